"""Contract terms for tests: an MSSP BASIC E contract for one calendar year, with what a test changes; the
contract's state as settlement stores it; and spend deltas as settlement receives them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from shared.events import ContractState, RosterSummary, SpendDelta
from shared.terms import ContractTerms


def mssp_terms(year: int = 2025, **overrides: Any) -> ContractTerms:
    base: dict[str, Any] = {
        "program": "MSSP",
        "track": "BE",
        "performance_year": year,
        "period_start": date(year, 1, 1),
        "period_end": date(year, 12, 31),
        "benchmark_per_capita": {"aged_nondual": Decimal("12000")},
        "msr": Decimal("0.02"),
    }
    return ContractTerms(**{**base, **overrides})


def contract_state(contract_id: str, roster: RosterSummary | None = None, **terms: Any) -> ContractState:
    """Version 1 of a contract on mssp_terms(**terms), ten aged/non-dual members unless `roster` says otherwise."""
    return ContractState(
        contract_id=contract_id, version=1, name=contract_id, payer="CMS", terms=mssp_terms(**terms),
        roster=roster or RosterSummary(members={"aged_nondual": 10}), changed_by="test", changed_at=datetime.now(UTC),
    )  # fmt: skip


def spend_deltas(rows: list[tuple[str, str, str]], paid: date = date(2025, 3, 15)) -> list[SpendDelta]:
    """(contract, member, amount) rows as March professional spend paid on `paid`, each with its own line key."""
    return [
        SpendDelta(
            contract_id=contract,
            member_id=member,
            line_key=f"L{n}",
            enrollment_type="aged_nondual",
            claim_type="professional",
            service_month=date(2025, 3, 1),
            paid_date=paid,
            amount=Decimal(amount),
        )
        for n, (contract, member, amount) in enumerate(rows)
    ]
