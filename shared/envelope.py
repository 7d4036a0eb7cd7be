"""The one event envelope, and the parsing of a raw Kafka value into it with machine-readable reasons."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, cached_property
from typing import Any, Generic, Self, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticSerializationError, to_json

P = TypeVar("P", bound=BaseModel)
MAX_EVENT_BYTES = 1_000_000
# A JSON number with more digits than a float holds exactly: pydantic's JSON parser reads a Decimal field through
# float (12345678901234.123456 -> ...234.123), so such an event takes the exact path.
LONG_NUMBER = re.compile(rb"[:\[,]\s*-?[0-9][0-9.eE+\-]{15,}")
# Every byte a number can be made of as b"1", any other as b"0": a long number is a run of 16 b"1"s at least. The
# regex tries a match at every byte of the event; translate and a substring search rule out nearly every event in
# one C-level pass each, and the regex decides the rest (docs/benchmarks.md has the timings).
_NUMBER_BYTES = bytes(49 if b in b"0123456789.eE+-" else 48 for b in range(256))
_NUMBER_RUN = b"1" * 16


def has_long_number(raw: bytes) -> bool:
    """Whether a JSON value holds a number with more digits than a float keeps (LONG_NUMBER)."""
    return _NUMBER_RUN in raw.translate(_NUMBER_BYTES) and LONG_NUMBER.search(raw) is not None


class Envelope(BaseModel, Generic[P]):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    event_type: str = Field(min_length=1, max_length=100)
    schema_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    producer: str = Field(min_length=1, max_length=100)
    correlation_id: str | None = Field(default=None, max_length=200)
    payload: P

    def to_bytes(self) -> bytes:
        return self._json

    @property
    def correlation(self) -> str:
        """What an event caused by this one carries as its correlation_id: the chain's first id (a load's id,
        or the submitting event's), so a claim line, its spend, the position and an alert can be followed."""
        return self.correlation_id or str(self.event_id)

    @cached_property
    def _json(self) -> bytes:
        # Envelopes are frozen: an event serialized for a table and again for the outbox is encoded once.
        return self.model_dump_json().encode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        # pydantic copies cached properties along with the fields (pydantic issue 11955): a copy with other
        # fields must not keep the original's bytes.
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("_json", None)
        return copied


@dataclass(frozen=True)
class Reason:
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class EventRejected(Exception):
    def __init__(self, reasons: list[Reason]) -> None:
        super().__init__("; ".join(f"{r.field}: {r.message}" for r in reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class EventSpec(Generic[P]):
    event_type: str
    payload: type[P]
    versions: frozenset[int] = frozenset({1})
    current_version: int = 1
    # Written only by our services (internal, signed topics), which write every decimal as text: no JSON number
    # needs the exact path, and the search for one (a scan of the whole event) is skipped.
    decimals_as_text: bool = False


@cache
def envelope_model(payload: type[P]) -> type[Envelope[P]]:
    """The envelope class for a payload type. pydantic looks a parametrized generic up in its own cache on
    every `Envelope[X]`, which cost about 5% of claims_ingest's CPU when done per claim line."""
    return Envelope[payload]  # type: ignore[valid-type]


def new_envelope(
    spec: EventSpec[P],
    payload: P,
    producer: str,
    *,
    event_id: uuid.UUID | None = None,
    correlation_id: str | None = None,
) -> Envelope[P]:
    return envelope_model(spec.payload)(
        event_id=event_id or uuid.uuid4(),
        event_type=spec.event_type,
        schema_version=spec.current_version,
        occurred_at=datetime.now(UTC),
        producer=producer,
        correlation_id=correlation_id,
        payload=payload,
    )


def raw_envelope(
    spec: EventSpec[Any],
    payload: Mapping[str, Any],
    producer: str,
    *,
    event_id: uuid.UUID,
    correlation_id: str | None = None,
    occurred_at: str | None = None,
) -> bytes:
    """An envelope around a payload nobody here validated (a payer's line, which its consumer refuses with
    reasons if it is bad), encoded as Envelope.to_bytes encodes one; dates and decimals as their text."""
    envelope = {
        "event_id": str(event_id),
        "event_type": spec.event_type,
        "schema_version": spec.current_version,
        "occurred_at": occurred_at or datetime.now(UTC).isoformat(),
        "producer": producer,
        "correlation_id": correlation_id,
        "payload": payload,
    }
    try:
        # pydantic-core writes dates and decimals as json.dumps(default=str) does, without a Python call for each.
        return to_json(envelope, fallback=str)
    except (PydanticSerializationError, UnicodeEncodeError):
        return json.dumps(envelope, default=str).encode()  # text it cannot encode (a lone surrogate) is escaped


def reasons_from(error: ValidationError, prefix: str = "") -> list[Reason]:
    return [
        Reason(
            field=prefix + ".".join(str(p) for p in e["loc"]) if e["loc"] else prefix.rstrip(".") or "$",
            code=e["type"],
            message=e["msg"],
        )
        for e in error.errors(include_url=False)
    ]


def parse_event(spec: EventSpec[P], raw: bytes | None) -> Envelope[P]:
    """Parse a Kafka value into a typed envelope, or raise EventRejected naming every bad field."""
    if raw is None or raw == b"":
        raise EventRejected([Reason("$", "empty", "the message has no value")])
    if len(raw) > MAX_EVENT_BYTES:
        raise EventRejected([Reason("$", "too_large", f"{len(raw)} bytes is over the {MAX_EVENT_BYTES} limit")])
    model = envelope_model(spec.payload)
    exact = spec.decimals_as_text or not has_long_number(raw)
    if exact:
        try:
            # The common case in one pass of pydantic's own JSON parser; anything it refuses takes the slow path
            # below, which finds the same reasons in the order operators read them (type, version, fields).
            envelope: Envelope[P] = model.model_validate_json(raw)
        except ValueError:
            pass
        else:
            if envelope.event_type == spec.event_type and envelope.schema_version in spec.versions:
                return envelope
    try:
        # A number is read as written (Decimal), never through float.
        data: Any = json.loads(raw, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventRejected([Reason("$", "json_invalid", str(exc)[:200])]) from exc
    if not isinstance(data, dict):
        raise EventRejected([Reason("$", "not_an_object", "the event must be a JSON object")])
    if data.get("event_type") != spec.event_type:
        raise EventRejected([Reason("event_type", "unexpected", f"expected {spec.event_type!r}, got {data.get('event_type')!r}")])
    if data.get("schema_version") not in spec.versions:
        raise EventRejected(
            [Reason("schema_version", "unsupported", f"supported: {sorted(spec.versions)}, got {data.get('schema_version')!r}")]
        )
    try:
        validated: Envelope[P] = model.model_validate(data)
        return validated
    except ValidationError as exc:
        raise EventRejected(reasons_from(exc)) from exc
