"""`acoflow rejects list|replay`: see what was refused and why, and re-submit it after a fix."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from acoflow.clients import ServiceClient
from readers.base import submission
from shared.topics import CLAIMS_SUBMITTED

PAGE = 5000


@dataclass(frozen=True)
class Replay:
    event_id: str
    key: str | None = None
    value: bytes | None = None
    skipped: str | None = None


def fetch(api: ServiceClient, status: str, originals: bool = False) -> list[dict[str, Any]]:
    """Every reject of the status (claims_ingest's API), page by page; with `originals`, the records themselves
    (PHI: the key needs the phi or admin role, and the read is audited)."""
    return api.pages("/rejects", cursor="event_id", page=PAGE, status=status, include_original=str(originals).lower())


def plan_replay(reject: dict[str, Any], payload: dict[str, Any] | None) -> Replay:
    """What to publish for one reject: a corrected payload when given; else the original message as it was
    (the fix is in the system: a new schema version understood, a contract now known); a record a file
    loader could not read needs a corrected payload."""
    event_id = str(reject["event_id"])
    if payload is not None:
        key, value = submission(payload, "acoflow-rejects-replay")
        return Replay(event_id, key, value)
    if reject.get("original_size"):
        return Replay(event_id, skipped=f"{reject['source']}: only the head of its {reject['original_size']:,} bytes was kept")
    original: str = reject["original"]
    raw = base64.b64decode(original) if reject["original_encoding"] == "base64" else original.encode()
    if reject["source_topic"] == CLAIMS_SUBMITTED.name:
        try:
            member = json.loads(raw).get("payload", {}).get("member_id")
        except (ValueError, AttributeError):
            member = None
        return Replay(event_id, str(member or "unknown"), raw)
    if reject["source_topic"] == "file" and "(jsonl)" in reject["source"]:
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        if isinstance(line, dict):
            key, value = submission(line, "acoflow-rejects-replay")
            return Replay(event_id, key, value)
    return Replay(event_id, skipped=f"{reject['source']}: not a claim line as it stands; pass --payload with the corrected line")


def mark(api: ServiceClient, event_ids: list[str]) -> int:
    return int(api.post("/rejects/replayed", {"event_ids": event_ids})["replayed"])


def reasons_text(reasons: list[dict[str, str]]) -> str:
    return "; ".join(f"{r['field']}: {r['message']}" for r in reasons)
