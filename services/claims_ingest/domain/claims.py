"""What a batch of claim lines means, decided without I/O: which lines count at all (denied never, a row
delivered twice once), what each stands for (the sign, a version group's final action), which versions of a
group lose their place, and which contracts a new line's spend goes to. claims_ingest's handler loads what these
need, calls them and saves what they decide; `acoflow load --dry-run` (versions.Ledger) applies the same rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from services.claims_ingest.domain.attribution import covering
from shared.events import AttributionPeriod, ClaimLine


def counted_amount(line: ClaimLine) -> Decimal:
    """The spend a line stands for: a cancellation negates; the final version of a group that is a cancellation
    leaves nothing (CCLF packet 5.3)."""
    if line.version_group and line.adjustment_type == "cancellation":
        return Decimal(0)
    return line.signed_amount


Fate = Literal["duplicate", "denied", "versioned", "counted"]


def fate(line: ClaimLine, seen: set[str]) -> Fate:
    """What one line is, given the line keys counted before it (its key is added): a denied line never counts
    (nor takes its key: the same line paid later counts); a row delivered again counts once; a line of a version
    group counts only while it is the group's final action (see `supersedes`); any other line counts as its
    signed amount."""
    if line.denied:
        return "denied"
    if line.line_key in seen:
        return "duplicate"
    seen.add(line.line_key)
    return "versioned" if line.version_group else "counted"


def admissible(lines: Iterable[ClaimLine]) -> tuple[dict[str, ClaimLine], int]:
    """(the lines that may count, by line key, the first of each key; how many were denied)."""
    out: dict[str, ClaimLine] = {}
    seen: set[str] = set()
    denied = 0
    for line in lines:
        f = fate(line, seen)
        if f == "denied":
            denied += 1
        elif f != "duplicate":
            out[line.line_key] = line
    return out, denied


def version_key(member_id: str, version_group: str) -> tuple[str, str]:
    """The group a version belongs to: a group id is the payer's claim control number, unique per member only."""
    return (member_id, version_group)


def supersedes(rank: str, current: str | None) -> bool:
    """Whether a version of this rank takes the final-action place from the current one (the greatest rank wins:
    ranks are written so that they order as the versions were issued)."""
    return current is None or rank > current


@dataclass(frozen=True)
class Version:
    line_key: str
    member_id: str
    version_group: str
    version_rank: str
    superseded: bool


def losers(versions: Sequence[Version]) -> list[str]:
    """The versions that no longer count: every one but the final action of its group, among those still
    counting."""
    best: dict[tuple[str, str], str] = {}
    for v in versions:
        key = version_key(v.member_id, v.version_group)
        if supersedes(v.version_rank, best.get(key)):
            best[key] = v.version_rank
    return [
        v.line_key for v in versions if not v.superseded and v.version_rank != best[version_key(v.member_id, v.version_group)]
    ]


@dataclass(frozen=True)
class Assignment:
    contract_id: str
    payer: str
    periods: tuple[AttributionPeriod, ...]
    claim_types: frozenset[str] | None  # None: every type (assignments recorded before the list was sent)


@dataclass(frozen=True)
class Attributed:
    line_key: str
    contract_id: str
    member_id: str
    period: AttributionPeriod
    amount: Decimal


def attribute(
    new: Mapping[str, ClaimLine], not_counted: set[str], assignments: Mapping[str, Sequence[Assignment]]
) -> tuple[list[Attributed], int]:
    """Where each new line's spend goes: every contract of its member with the line's payer, a period covering its
    service date and its claim type counted. Returns the attributions and how many lines found no contract."""
    out: list[Attributed] = []
    unattributed = 0
    for key, line in new.items():
        if key in not_counted:
            continue
        matched = False
        for a in assignments.get(line.member_id, ()):
            if a.payer != line.payer or (a.claim_types is not None and line.claim_type not in a.claim_types):
                continue
            period = covering(a.periods, line.from_date)
            if period is None:
                continue
            matched = True
            out.append(Attributed(key, a.contract_id, line.member_id, period, counted_amount(line)))
        unattributed += not matched
    return out, unattributed
