"""Completion factors estimated from a contract's own paid-date history (chain ladder)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from services.settlement.domain.completion import FLOOR, MAX_LAG, MIN_MONTHS_PER_LAG, estimate_completion, month_index
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


def chain_ladder(paid: dict[tuple[str, int], D], known_through: int) -> tuple[D, ...] | None:
    """The chain ladder from its definition: the cumulative triangle, each lag's development factor as the
    ratio of the column sums over the months observed one lag further with something paid by the lag, and
    each completion factor the inverse of the product of the factors from its lag on."""
    longest = min(MAX_LAG, max((lag for _, lag in paid), default=0) + 1)
    rows = []
    for m in sorted({month_index(k) for k, _ in paid}):
        known = min(longest, known_through - m)
        incremental = [
            sum((a for (k, lag), a in paid.items() if month_index(k) == m and lag == j), D(0)) for j in range(known + 1)
        ]
        rows.append([sum(incremental[: j + 1], D(0)) for j in range(known + 1)])
    development = []
    for lag in range(MAX_LAG):
        used = [r for r in rows if len(r) > lag + 1 and r[lag] > 0]
        if len(used) < MIN_MONTHS_PER_LAG:
            break
        development.append(sum((r[lag + 1] for r in used), D(0)) / sum((r[lag] for r in used), D(0)))
    if not development:
        return None
    out = []
    for lag in range(len(development)):
        remaining = D(1)
        for f in development[lag:]:
            remaining *= f
        out.append(min(D(1), max(FLOOR, D(1) / remaining)) if remaining > 0 else D(1))
    return tuple(out)


amounts = st.decimals(min_value=-1000, max_value=900_000, places=2)
keys = st.tuples(st.integers(2023, 2025), st.integers(1, 12), st.integers(0, 30)).map(lambda t: (f"{t[0]}-{t[1]:02d}", t[2]))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, amounts, max_size=60), st.integers(2023 * 12, 2026 * 12))
def test_the_estimate_is_the_chain_ladder_of_its_triangle(paid: dict[tuple[str, int], D], known_through: int) -> None:
    assert estimate_completion(paid, known_through) == chain_ladder(paid, known_through)


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
