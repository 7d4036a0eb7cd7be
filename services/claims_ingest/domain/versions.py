"""A file's spend as claims_ingest would count it (`acoflow load --dry-run`), by the rules of domain/claims.py,
(member-id chains, CCLF9, are resolved by the readers: readers/base.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from services.claims_ingest.domain.claims import Content, fate, supersedes, version_key
from shared.events import ClaimLine
from shared.expenditure import line_spend


@dataclass
class Ledger:
    """The signed spend a set of claim lines stands for, by the same rules claims_ingest applies."""

    lines: int = 0
    duplicates: int = 0
    conflicts: int = 0  # rows claims_ingest would refuse: a different row under a line key already taken
    denied: int = 0
    superseded: int = 0
    _seen: dict[str, Content] = field(default_factory=dict)
    _plain: dict[str, Decimal] = field(default_factory=dict)  # by claim type
    _plain_gross: dict[str, Decimal] = field(default_factory=dict)
    _groups: dict[tuple[str, str], ClaimLine] = field(default_factory=dict)  # final actions

    def add(self, line: ClaimLine) -> None:
        self.lines += 1
        f = fate(line, self._seen)
        if f == "duplicate":
            self.duplicates += 1
        elif f == "conflict":
            self.conflicts += 1
        elif f == "denied":
            self.denied += 1
        elif f == "counted":
            kind = line.claim_type
            self._plain[kind] = self._plain.get(kind, Decimal(0)) + line.signed_amount
            self._plain_gross[kind] = self._plain_gross.get(kind, Decimal(0)) + line.signed_gross
        else:
            assert line.version_group is not None  # fate: versioned
            key = version_key(line.member_id, line.version_group)
            current = self._groups.get(key)
            if supersedes(line.version_rank, None if current is None else current.version_rank):
                self._groups[key] = line
            self.superseded += current is not None

    def _by_type(self, plain: dict[str, Decimal], gross: bool) -> dict[str, Decimal]:
        out = dict(plain)
        for line in self._groups.values():
            amount = final_action_amount(line, gross=gross)
            out[line.claim_type] = out.get(line.claim_type, Decimal(0)) + amount
        return dict(sorted(out.items()))

    @property
    def by_claim_type(self) -> dict[str, Decimal]:
        """Signed totals by claim type: what each type stands for before a contract's terms choose what counts."""
        return self._by_type(self._plain, gross=False)

    @property
    def gross_by_claim_type(self) -> dict[str, Decimal]:
        """The same with Part A's gross payments (IME, DSH and uncompensated care left in), to reconcile a file."""
        return self._by_type(self._plain_gross, gross=True)

    @property
    def total(self) -> Decimal:
        return sum(self.by_claim_type.values(), Decimal(0))


def final_action_amount(line: ClaimLine, gross: bool = False) -> Decimal:
    """What the final version of a group stands for (shared/expenditure.py: line_spend), gross or not."""
    if gross:
        return Decimal(0) if line.adjustment_type == "cancellation" else line.signed_gross
    return line_spend(line)
