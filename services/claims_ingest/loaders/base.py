"""The loader interface and the envelope every loaded line is published in."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from services.claims_ingest.domain.attribution import NAMESPACE, submission_event_id
from shared.events import CLAIM_SUBMITTED, ClaimLine


class Loader(Protocol):
    name: str

    def detect(self, path: Path, head: bytes) -> bool: ...

    def lines(self, path: Path) -> Iterator[dict[str, Any]]:
        """Canonical claim lines as dicts, in file order (validation is claims_ingest's job)."""
        ...


def submission(line: dict[str, Any], producer: str = "acoflow-load") -> tuple[str, bytes]:
    """(key, value) for claims.submitted.v1. The event id comes from the line's identity, so loading the
    same file twice publishes the same ids; a line too broken to identify gets an id from its content."""
    try:
        event_id = submission_event_id(ClaimLine.model_validate(line).line_key)
    except ValidationError:
        event_id = uuid.uuid5(NAMESPACE, json.dumps(line, sort_keys=True, default=str))
    envelope = {
        "event_id": str(event_id),
        "event_type": CLAIM_SUBMITTED.event_type,
        "schema_version": CLAIM_SUBMITTED.current_version,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": producer,
        "payload": line,
    }
    key = str(line.get("member_id") or "unknown")
    return key, json.dumps(envelope, default=str).encode()
