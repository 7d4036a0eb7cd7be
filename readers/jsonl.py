"""JSON lines of canonical claim lines (the claims.submitted.v1 payload schema, docs/claims-schema.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from readers.base import Item, LoadOptions, Rejected
from shared.envelope import Reason


class JsonlLoader:
    name = "jsonl"

    def detect(self, path: Path, head: bytes) -> bool:
        return path.suffix in (".jsonl", ".ndjson", ".json") and b'"claim_id"' in head and b'"resourceType"' not in head

    def read(self, paths: Sequence[Path], options: LoadOptions) -> Iterator[Item]:
        for path in paths:
            with path.open(encoding="utf-8", errors="replace") as handle:
                for number, text in enumerate(handle, start=1):
                    if not text.strip():
                        continue
                    try:
                        value = json.loads(text)
                    except json.JSONDecodeError as exc:
                        yield Rejected(path.name, number, "jsonl", text, (Reason("$", "json_invalid", exc.msg),))
                        continue
                    if not isinstance(value, dict):
                        yield Rejected(path.name, number, "jsonl", text, (Reason("$", "dict_type", "not a JSON object"),))
                        continue
                    yield value
