"""`acoflow rejects list|replay`: see what was refused and why, and re-submit it after a fix."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import httpx

from services.claims_ingest.loaders.base import submission
from shared.topics import CLAIMS_SUBMITTED

PAGE = 5000


@dataclass(frozen=True)
class Replay:
    event_id: str
    key: str | None = None
    value: bytes | None = None
    skipped: str | None = None


def fetch(base: str, status: str, headers: dict[str, str], originals: bool = False) -> list[dict[str, Any]]:
    """Every reject of the status, page by page; with `originals`, the records themselves (PHI: the key needs
    the phi or admin role, and the read is audited)."""
    rows: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"status": status, "limit": PAGE, "include_original": str(originals).lower()}
        if after is not None:
            params["after"] = after
        response = httpx.get(f"{base}/rejects", params=params, headers=headers, timeout=30)
        response.raise_for_status()
        page = list(response.json())
        rows += page
        if len(page) < PAGE:
            return rows
        after = str(page[-1]["event_id"])


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


def mark(base: str, event_ids: list[str], headers: dict[str, str]) -> int:
    response = httpx.post(f"{base}/rejects/replayed", json={"event_ids": event_ids}, headers=headers, timeout=30)
    response.raise_for_status()
    return int(response.json()["replayed"])


def reasons_text(reasons: list[dict[str, str]]) -> str:
    return "; ".join(f"{r['field']}: {r['message']}" for r in reasons)
