"""Completion factors estimated from a contract's own paid-date history (chain ladder)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from services.settlement.domain.completion import estimate_completion, month_index
from services.settlement.domain.position import DEFAULT_COMPLETION, MemberStats, PositionInputs, project
from tests.terms import mssp_terms

TRUE_SHARES = (D("0.40"), D("0.30"), D("0.20"), D("0.10"))  # paid at lags 0..3; complete by lag 3


def triangle(months: int, known_through: int, scale: dict[int, D] | None = None) -> dict[tuple[str, int], D]:
    """Service months 2024-01.. with an eventual spend of 1000 (times a per-month scale), paid by TRUE_SHARES."""
    out: dict[tuple[str, int], D] = {}
    for i in range(months):
        key = f"{2024 + i // 12}-{i % 12 + 1:02d}"
        ultimate = D(1000) * (scale or {}).get(i, D(1))
        for lag, share in enumerate(TRUE_SHARES):
            if month_index(key) + lag <= known_through:
                out[(key, lag)] = ultimate * share
    return out


def test_recovers_the_true_run_out_from_a_consistent_history() -> None:
    through = month_index("2024-12")
    factors = estimate_completion(triangle(12, through, {i: D(1 + i) for i in range(12)}), through)
    assert factors is not None
    rounded = [f.quantize(D("0.0001")) for f in factors]
    assert rounded[:3] == [D("0.4000"), D("0.7000"), D("0.9000")] and set(rounded[3:]) == {D("1.0000")}


def test_too_little_history_gives_no_estimate() -> None:
    through = month_index("2024-03")
    assert estimate_completion(triangle(3, through), through) is None
    assert estimate_completion({}, through) is None


def test_the_position_uses_the_estimate_when_the_contract_gives_no_factors() -> None:
    terms = mssp_terms(2024)
    through = month_index("2024-10")
    lags = triangle(10, through)
    paid_by_month: dict[str, D] = {}
    for (month, _), amount in lags.items():
        paid_by_month[month] = paid_by_month.get(month, D(0)) + amount
    total = sum(paid_by_month.values(), D(0))

    def position(paid_by_lag: dict[tuple[str, int], D]) -> tuple[D, tuple[str, ...]]:
        p = project(
            PositionInputs(
                terms=terms,
                members={"aged_nondual": 1},
                member_months={f"2024-{m:02d}": {"aged_nondual": 1} for m in range(1, 13)},
                paid_by_month=paid_by_month,
                member_stats=MemberStats(members=1, total=total, sum_of_squares=total * total, truncated_total=total),
                as_of=date(2024, 10, 20),
                paid_by_lag=paid_by_lag,
            )
        )
        return p.incurred_to_date, p.explanation

    incurred, notes = position(lags)
    assert incurred.quantize(D("0.01")) == D("10000.00")  # ten months of 1,000 each, once complete
    assert any("estimated from the contract's paid-date history" in n for n in notes)
    default_incurred, default_notes = position({})
    assert any("default run-out curve" in n for n in default_notes)
    assert default_incurred != incurred and DEFAULT_COMPLETION[0] != D("0.4")


def test_elapsed_share_of_the_period() -> None:
    from services.settlement.domain.position import elapsed_share

    terms = mssp_terms()
    assert elapsed_share(terms, date(2025, 3, 20)) == D("0.25")
    assert elapsed_share(terms, None) == D(1)
    assert elapsed_share(terms, date(2024, 11, 1)) == D(1) / D(12)
    assert elapsed_share(terms, date(2026, 2, 1)) == D(1)
