"""Rosters: members with effective dates and enrollment type; their member-months; changes between versions."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events import AttributionPeriod, ContractState, RosterSummary
from shared.terms import ContractTerms, EnrollmentType
from shared.text import CalendarDate


class RosterMember(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    member_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")
    enrollment_type: EnrollmentType = "aged_nondual"
    start: CalendarDate | None = None  # default: the contract's period start
    end: CalendarDate | None = None  # default: the contract's period end

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("end: before start")
        return self


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def months_between(start: date, end: date) -> list[str]:
    months: list[str] = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def periods_of(members: list[RosterMember], terms: ContractTerms) -> dict[str, tuple[AttributionPeriod, ...]]:
    """Each member's attribution periods, clipped to the contract period. A member listed twice keeps both."""
    out: dict[str, list[AttributionPeriod]] = defaultdict(list)
    for m in members:
        start = max(m.start or terms.period_start, terms.period_start)
        end = min(m.end or terms.period_end, terms.period_end)
        if end >= start:
            out[m.member_id].append(AttributionPeriod(start=start, end=end, enrollment_type=m.enrollment_type))
    return {k: tuple(sorted(v, key=lambda p: p.start)) for k, v in out.items()}


def summarize(periods: dict[str, tuple[AttributionPeriod, ...]]) -> RosterSummary:
    """Member-months: a member counts in every calendar month they are attributed on at least one day."""
    members: dict[EnrollmentType, int] = defaultdict(int)
    months: dict[str, dict[EnrollmentType, int]] = defaultdict(lambda: defaultdict(int))
    for member_periods in periods.values():
        members[member_periods[-1].enrollment_type] += 1
        seen: set[str] = set()
        for p in member_periods:
            for key in months_between(p.start, p.end):
                if key not in seen:
                    seen.add(key)
                    months[key][p.enrollment_type] += 1
    return RosterSummary(members=dict(members), member_months={k: dict(v) for k, v in sorted(months.items())})


def changed_members(
    before: dict[str, tuple[AttributionPeriod, ...]], after: dict[str, tuple[AttributionPeriod, ...]]
) -> dict[str, tuple[AttributionPeriod, ...]]:
    """Members whose periods differ between two versions, with their new periods (empty: removed)."""
    changed = {m: p for m, p in after.items() if before.get(m) != p}
    changed.update({m: () for m in before if m not in after})
    return changed


def unpriced(members: list[RosterMember], terms: ContractTerms) -> str | None:
    """Why the roster cannot be settled under the terms' benchmark, or None: a per-capita benchmark must price
    every enrollment type the roster lists (a PMPM benchmark prices every member alike)."""
    types = terms.priced_types
    if types is None:
        return None
    for index, member in enumerate(members):
        if member.enrollment_type not in types:
            priced = ", ".join(sorted(types))
            return (
                f"roster[{index}]: member {member.member_id} is {member.enrollment_type}, which the benchmark does not"
                f" price (it has {priced})"
            )
    return None


def attribution_changes(
    prev: ContractState | None,
    before: dict[str, tuple[AttributionPeriod, ...]],
    after: dict[str, tuple[AttributionPeriod, ...]],
    payer: str,
    terms: ContractTerms,
) -> dict[str, tuple[AttributionPeriod, ...]]:
    """The attribution events that make claims_ingest's view equal the new version: members whose periods
    changed, and removed members with none. When the payer or the counted claim types change, every member's
    spend is re-decided, so every kept member is sent again."""
    if prev is not None and (prev.payer != payer or prev.terms.counted_claim_types != terms.counted_claim_types):
        return {**{m: () for m in before if m not in after}, **after}
    return changed_members(before, after)


def parse_roster_csv(text: str) -> list[RosterMember]:
    """CSV with a header: member_id, and optionally enrollment_type, start, end."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if reader.fieldnames is None or "member_id" not in reader.fieldnames:
            raise ValueError("roster: the CSV needs a header row with a member_id column")
        rows: list[RosterMember] = []
        for line, row in enumerate(reader, start=2):
            data = {k: v for k, v in row.items() if k and v not in (None, "")}
            try:
                rows.append(RosterMember.model_validate(data))
            except ValueError as exc:
                raise ValueError(f"roster line {line}: {exc}") from exc
    except csv.Error as exc:
        raise ValueError(f"roster: not CSV ({exc})") from exc
    return rows
