"""Which contract a claim line's spend belongs to, and the deterministic ids of the events it causes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from shared.events import AttributionPeriod

# Fixed namespace: the same claim row always maps to the same event ids, in every process and on every replay.
BATCH_NAMESPACE = uuid.UUID("8e0c5a52-1d7b-4f0e-b1c4-2a9f6d3e7b10")


def spend_identity(line_key: str, contract_id: str, generation: int, sign: Literal["+", "-"]) -> str:
    """What makes a spend delta itself: the claim row, the contract, the attribution generation and the sign."""
    return f"spend|{line_key}|{contract_id}|{generation}|{sign}"


def batch_event_id(identities: Iterable[str]) -> uuid.UUID:
    """A spend batch's event id, from its deltas' identities in order: the same spend is the same event
    wherever it is re-sent from. Each identity is framed by its length, because a line's source is free text
    and may hold any separator."""
    return uuid.uuid5(BATCH_NAMESPACE, "".join(f"{len(i)}:{i}" for i in identities))


def covering(periods: Iterable[AttributionPeriod], service_date: date) -> AttributionPeriod | None:
    for period in periods:
        if period.start <= service_date <= period.end:
            return period
    return None


def service_month(day: date) -> date:
    return day.replace(day=1)


@dataclass(frozen=True)
class Emitted:
    generation: int
    active: bool
    amount: Decimal


@dataclass(frozen=True)
class Correction:
    line_key: str
    generation: int
    sign: Literal["+", "-"]
    amount: Decimal
    period: AttributionPeriod | None


def corrections(
    lines: dict[str, tuple[date, Decimal]],
    emitted: dict[str, Emitted],
    periods: tuple[AttributionPeriod, ...],
) -> list[Correction]:
    """What to emit so that a member's spend in one contract equals the signed sum of the lines the new
    periods cover: add lines newly covered, reverse lines no longer covered, leave the rest alone."""
    out: list[Correction] = []
    for line_key, (service_date, amount) in lines.items():
        period = covering(periods, service_date)
        prior = emitted.get(line_key)
        active = prior is not None and prior.active
        if period is not None and not active:
            generation = 1 if prior is None else prior.generation + 1
            out.append(Correction(line_key, generation, "+", amount, period))
        elif period is None and prior is not None and active:
            out.append(Correction(line_key, prior.generation, "-", -prior.amount, None))
    return out
