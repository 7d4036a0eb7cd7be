"""The format readers' shared parts: what a reader yields for a set of files, the envelope a read line is published in
and its event id, member-id chains (CCLF9). CCLF, FHIR, Tuva and JSONL readers beside it; registry.py picks one."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from shared.envelope import Reason, raw_envelope
from shared.events import CLAIM_SUBMITTED, ClaimLine

# A submitted line's event id is derived from its line key, so a file read twice publishes the same events.
NAMESPACE = uuid.UUID("5b7f3f0e-2f0e-4a53-9d55-6a7a2b0c1a10")


def submission_event_id(line_key: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"submitted|{line_key}")


def resolve_chains(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """previous id -> the newest id it leads to (A->B and B->C give A->C and B->C). A cycle cannot be
    resolved: its members map to themselves and are left out."""
    step = dict(pairs)
    out: dict[str, str] = {}
    for start in step:
        seen = {start}
        current = step[start]
        while current in step and current not in seen:
            seen.add(current)
            current = step[current]
        if current not in seen:
            out[start] = current
    return out


class LoadError(Exception):
    """A file set that cannot be loaded at all (e.g. CCLF0 counts disagree): nothing is published."""


class FieldError(Exception):
    """One record cannot become a claim line: the field (in the source's own terms) and why."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.reason = Reason(field, code, message)


@dataclass(frozen=True)
class Rejected:
    """A record the loader could not turn into a claim line; it goes to claims.rejected.v1 as it was."""

    file: str
    line: int
    fmt: str
    original: str
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class IdChange:
    """An old member id and the id that replaces it (CCLF9), already resolved through chains."""

    previous_id: str
    current_id: str
    effective_date: date | None


@dataclass(frozen=True)
class MemberRecord:
    """A member the payer lists (CCLF8), with what a roster needs and nothing identifying beyond the id."""

    member_id: str
    enrollment_type: str
    start: date | None
    end: date | None
    death_date: date | None


@dataclass
class LoadOptions:
    payer: str = "CMS"
    notes: list[str] = field(default_factory=list)


Item = dict[str, Any] | Rejected | IdChange | MemberRecord


class Loader(Protocol):
    name: str

    def detect(self, path: Path, head: bytes) -> bool: ...

    def read(self, paths: Sequence[Path], options: LoadOptions) -> Iterator[Item]:
        """Canonical claim lines as dicts (validation is claims_ingest's job), and whatever else the files hold."""
        ...


def submission(
    line: dict[str, Any],
    producer: str = "acoflow-load",
    correlation_id: str | None = None,
    *,
    validated: ClaimLine | None = None,
    occurred_at: str | None = None,
) -> tuple[str, bytes]:
    """(key, value) for claims.submitted.v1. The event id comes from the line's identity, so loading the
    same file twice publishes the same ids; a line too broken to identify gets an id from its content. The
    correlation id (a load's) follows the line into its spend, positions and alerts. `validated`: the line
    already validated (a loader counts it too), so it is not validated twice."""
    if validated is None:
        try:
            validated = ClaimLine.model_validate(line)
        except ValidationError:
            validated = None
    if validated is not None:
        event_id = submission_event_id(validated.line_key)
    else:
        event_id = uuid.uuid5(NAMESPACE, json.dumps(line, sort_keys=True, default=str))
    key = str(line.get("member_id") or "unknown")
    return key, raw_envelope(
        CLAIM_SUBMITTED, line, producer, event_id=event_id, correlation_id=correlation_id, occurred_at=occurred_at
    )
