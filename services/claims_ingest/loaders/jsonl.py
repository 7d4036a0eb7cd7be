"""JSON lines of canonical claim lines (the claims.submitted.v1 payload schema)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JsonlLoader:
    name = "jsonl"

    def detect(self, path: Path, head: bytes) -> bool:
        return path.suffix in (".jsonl", ".ndjson") and b'"claim_id"' in head

    def lines(self, path: Path) -> Iterator[dict[str, Any]]:
        with path.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    # Kept, not dropped: claims_ingest rejects it with the reason, and it stays replayable.
                    value = {"unparseable_line": number, "text": text[:10_000]}
                yield value if isinstance(value, dict) else {"unparseable_line": number, "value": value}
