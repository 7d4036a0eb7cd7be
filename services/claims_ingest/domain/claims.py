"""What a batch of claim lines means, decided without I/O: which lines count at all (denied never, a row
delivered twice once, a different row under a key already taken refused), what each stands for (the sign, a
version group's final action), which versions of a group lose their place, and which contracts a new line's spend
goes to. claims_ingest's handler loads what these
need, calls them and saves what they decide; `acoflow load --dry-run` (versions.Ledger) applies the same rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from services.claims_ingest.domain.attribution import covering
from shared.events import AttributionPeriod, ClaimLine
from shared.expenditure import counts, line_spend

Fate = Literal["duplicate", "conflict", "denied", "versioned", "counted"]
# What a line says that decides its spend. Two rows of one line key that agree on it are the same row delivered
# twice; rows that differ in it are two different lines under one key, and the later one is refused (a changed
# claim comes as an adjustment or a cancellation, with a key of its own). The member is not part of it: a member's
# id changes between deliveries (CCLF9), and a row delivered again under the newest id is still the same row.
CONTENT_FIELDS = ("payer", "claim_type", "from_date", "paid_amount")
Content = tuple[str, str, date, Decimal]


def content(line: ClaimLine) -> Content:
    return (line.payer, line.claim_type, line.from_date, line_spend(line))


def differing_field(known: Content, other: Content) -> str:
    """The first field of CONTENT_FIELDS in which two lines of one key differ."""
    return next(name for name, a, b in zip(CONTENT_FIELDS, known, other, strict=True) if a != b)


def fate(line: ClaimLine, seen: dict[str, Content]) -> Fate:
    """What one line is, given the lines counted before it by line key (its own is added): a denied line never
    counts (nor takes its key: the same line paid later counts); a row delivered again counts once, and a different
    row under a key already taken is a conflict; a line of a version group counts only while it is the group's
    final action (see `supersedes`); any other line counts as its signed amount."""
    if line.denied:
        return "denied"
    known = seen.get(line.line_key)
    if known is not None:
        return "duplicate" if known == content(line) else "conflict"
    seen[line.line_key] = content(line)
    return "versioned" if line.version_group else "counted"


@dataclass
class Admitted:
    """A batch's lines sorted by fate: those that may count (by line key, the first of each key), and the rest."""

    lines: dict[str, ClaimLine] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)  # each admitted line's position in the batch
    denied: int = 0
    duplicates: int = 0
    conflicts: list[tuple[int, str]] = field(default_factory=list)  # (position in the batch, the field that differs)


def admissible(lines: Iterable[ClaimLine]) -> Admitted:
    out = Admitted()
    seen: dict[str, Content] = {}
    for position, line in enumerate(lines):
        f = fate(line, seen)
        if f == "denied":
            out.denied += 1
        elif f == "duplicate":
            out.duplicates += 1
        elif f == "conflict":
            out.conflicts.append((position, differing_field(seen[line.line_key], content(line))))
        else:
            out.lines[line.line_key] = line
            out.positions[line.line_key] = position
    return out


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
            if a.payer != line.payer or not counts(line.claim_type, a.claim_types):
                continue
            period = covering(a.periods, line.from_date)
            if period is None:
                continue
            matched = True
            out.append(Attributed(key, a.contract_id, line.member_id, period, line_spend(line)))
        unattributed += not matched
    return out, unattributed
