"""The loader interface: what a loader yields for a set of files, and the envelope a loaded line is published in."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from services.claims_ingest.domain.attribution import NAMESPACE, submission_event_id
from shared.envelope import Reason, raw_envelope
from shared.events import CLAIM_SUBMITTED, ClaimLine


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
