"""What a batch of claim lines means, decided without I/O: which lines count at all (denied never, a row
delivered twice once), what each stands for (the sign, a version group's final action), which versions of a
group lose their place, and which contracts a new line's spend goes to. claims_ingest's handler loads what these
need, calls them and saves what they decide; `acoflow load --dry-run` (versions.Ledger) applies the same rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.claims_ingest.domain.attribution import covering
from shared.events import AttributionPeriod, ClaimLine


def counted_amount(line: ClaimLine) -> Decimal:
    """The spend a line stands for: a cancellation negates; the final version of a group that is a cancellation
    leaves nothing (CCLF packet 5.3)."""
    if line.version_group and line.adjustment_type == "cancellation":
        return Decimal(0)
    return line.signed_amount


def admissible(lines: Iterable[ClaimLine]) -> tuple[dict[str, ClaimLine], int]:
    """(the lines that may count, by line key, the first of each key; how many were denied)."""
    out: dict[str, ClaimLine] = {}
    denied = 0
    for line in lines:
        if line.denied:
            denied += 1
            continue
        out.setdefault(line.line_key, line)
    return out, denied


@dataclass(frozen=True)
class Version:
    line_key: str
    member_id: str
    version_group: str
    version_rank: str
    superseded: bool


def losers(versions: Sequence[Version]) -> list[str]:
    """The versions that no longer count: every one but the greatest rank of its (member, group), among those
    still counting."""
    best: dict[tuple[str, str], str] = {}
    for v in versions:
        key = (v.member_id, v.version_group)
        best[key] = max(best.get(key, ""), v.version_rank)
    return [v.line_key for v in versions if not v.superseded and v.version_rank != best[(v.member_id, v.version_group)]]


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
