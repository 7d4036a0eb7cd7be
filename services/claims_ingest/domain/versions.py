"""Claim-version rules with no I/O: re-delivered rows count once, denied lines never, superseded versions
of a final-action group (Part D) not at all; member-id chains (CCLF9) resolve to the newest id."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from shared.events import ClaimLine


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


@dataclass
class Ledger:
    """The signed spend a set of claim lines stands for, by the same rules claims_ingest applies."""

    lines: int = 0
    duplicates: int = 0
    denied: int = 0
    superseded: int = 0
    _seen: set[str] = field(default_factory=set)
    _plain: Decimal = Decimal(0)
    _groups: dict[str, ClaimLine] = field(default_factory=dict)

    def add(self, line: ClaimLine) -> None:
        self.lines += 1
        if line.line_key in self._seen:
            self.duplicates += 1
            return
        self._seen.add(line.line_key)
        if line.denied:
            self.denied += 1
            return
        group = line.version_group
        if group is None:
            self._plain += line.signed_amount
            return
        current = self._groups.get(group)
        if current is None or line.version_rank > current.version_rank:
            self._groups[group] = line
        self.superseded += current is not None

    @property
    def total(self) -> Decimal:
        return self._plain + sum((final_action_amount(x) for x in self._groups.values()), Decimal(0))


def final_action_amount(line: ClaimLine) -> Decimal:
    """What the final version of a group stands for: a deletion (cancellation) leaves nothing."""
    return Decimal(0) if line.adjustment_type == "cancellation" else line.signed_amount
