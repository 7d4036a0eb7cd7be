"""Contract terms for tests: an MSSP BASIC E contract for one calendar year, with what a test changes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

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
