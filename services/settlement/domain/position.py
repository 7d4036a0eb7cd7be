"""Running position during the year (METHODOLOGY.md section 4): benchmark and spend to date, completion-
adjusted projection, the settlement it implies, downside exposure, and how certain the outcome is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from services.settlement.domain.benchmark import BenchmarkInputs, Trend, UpdatedBenchmark, updated_benchmark
from services.settlement.domain.completion import estimate_completion, month_index
from services.settlement.domain.settle import Settlement, SettlementError, SettlementInputs, settle, unsettled
from services.settlement.domain.stats import normal_cdf
from shared.expenditure import describe
from shared.money import ONE, ZERO, to_cents
from shared.terms import ENROLLMENT_TYPES, ContractTerms, EnrollmentType, QualityStandard, agreement_start

# Share of a service month's claims paid by k months after it (k = 0, 1, ...): a typical Medicare
# Parts A/B run-out. Later lags count as complete. Contracts override it with their own factors.
DEFAULT_COMPLETION: tuple[Decimal, ...] = tuple(
    Decimal(x) for x in ("0.55", "0.80", "0.90", "0.95", "0.97", "0.98", "0.99", "0.995")
)
TWELVE = Decimal(12)


@dataclass(frozen=True)
class MemberStats:
    """Per-member spend to date across the roster (members without claims count as zero)."""

    members: int
    total: Decimal = ZERO
    sum_of_squares: Decimal = ZERO
    truncated_total: Decimal = ZERO  # sum of per-member totals to date, capped at the prorated threshold


@dataclass(frozen=True)
class PositionInputs:
    terms: ContractTerms
    members: dict[EnrollmentType, int]
    member_months: dict[str, dict[EnrollmentType, int]]  # by YYYY-MM
    paid_by_month: dict[str, Decimal]  # by service month YYYY-MM
    member_stats: MemberStats
    as_of: date | None  # the latest paid date seen: claims are known up to here
    quality_score: Decimal | None = None
    quality_standard: QualityStandard | None = None
    # Paid amounts by (service month YYYY-MM, months from service to payment): the contract's own run-out.
    paid_by_lag: dict[tuple[str, int], Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Position:
    as_of: date | None
    members: int
    member_months_to_date: int
    member_months_total: int
    benchmark_to_date: Decimal
    benchmark_total: Decimal
    paid_to_date: Decimal
    incurred_to_date: Decimal
    projected_expenditure: Decimal
    settlement: Settlement
    downside_exposure_now: Decimal
    downside_exposure_at_cap: Decimal
    probability_clears_msr: Decimal
    probability_crosses_mlr: Decimal
    quality_score: Decimal
    explanation: tuple[str, ...] = field(default=())


# The low and high trend scenarios are read as the 5th and 95th percentiles of the benchmark.
Z_90 = Decimal("1.6449")


@dataclass(frozen=True)
class BenchmarkBasis:
    per_capita: dict[EnrollmentType, Decimal] | None  # annual, by type; None: the PMPM
    relative_sd: Decimal = ZERO  # the benchmark's own uncertainty (the trend's), as a share of it
    notes: tuple[str, ...] = ()


def benchmark_basis(terms: ContractTerms, months_by_type: dict[EnrollmentType, int]) -> BenchmarkBasis:
    """What the position settles against: the contract's fixed benchmark, or the performance-year benchmark
    computed from its inputs under the chosen trend scenario (domain/benchmark.py), with the spread that the
    low and high scenarios give. Raises SettlementError naming an input that is missing."""
    update = terms.benchmark_update
    if update is None:
        return BenchmarkBasis(terms.benchmark_per_capita)
    person_years = update.person_years or {t: Decimal(n) / TWELVE for t, n in months_by_type.items() if n}
    scenarios = {"low": update.national_growth_low, "expected": update.national_growth, "high": update.national_growth_high}

    def under(national: Decimal) -> UpdatedBenchmark:
        trend = Trend(national, dict(update.regional_growth), update.national_weight, update.acpt)
        return updated_benchmark(
            BenchmarkInputs(
                dict(update.historical), dict(update.risk_by3), dict(update.risk_py), person_years,
                update.agreement_start_year, trend,
            )
        )  # fmt: skip

    try:
        chosen = scenarios[terms.benchmark_trend_scenario] or update.national_growth
        result = under(chosen)
        low, high = update.national_growth_low, update.national_growth_high
        spread = ZERO
        if low is not None and high is not None and result.per_capita > 0:
            spread = (under(high).per_capita - under(low).per_capita) / (2 * Z_90) / result.per_capita
    except ValueError as exc:
        raise SettlementError(f"benchmark_update.{exc}") from exc
    notes = (
        *result.explanation(),
        f"benchmark trend: the {terms.benchmark_trend_scenario} scenario ({chosen}); low/high scenarios give a"
        f" benchmark uncertainty of {spread:.2%} (one standard deviation), counted in the chances",
    )
    return BenchmarkBasis({s.enrollment_type: s.updated for s in result.steps}, spread, notes)


def _annual_benchmark(terms: ContractTerms, basis: BenchmarkBasis, months: dict[EnrollmentType, int]) -> Decimal:
    if terms.benchmark_pmpm is not None and basis.per_capita is None:
        return terms.benchmark_pmpm * sum(months.values())
    per_capita = basis.per_capita or {}
    return sum((per_capita.get(t, ZERO) * n / TWELVE for t, n in months.items()), ZERO)


def _by_type(member_months: dict[str, dict[EnrollmentType, int]], last: int | None) -> dict[EnrollmentType, int]:
    out: dict[EnrollmentType, int] = {t: 0 for t in ENROLLMENT_TYPES}
    for key, counts in member_months.items():
        if last is None or month_index(key) <= last:
            for t, n in counts.items():
                out[t] += n
    return out


def elapsed_share(terms: ContractTerms, as_of: date | None) -> Decimal:
    """Share of the period's months elapsed by as_of (whole months, at least one, at most all)."""
    start = terms.period_start.year * 12 + terms.period_start.month - 1
    end = terms.period_end.year * 12 + terms.period_end.month - 1
    if as_of is None:
        return ONE
    elapsed = min(max(as_of.year * 12 + as_of.month - 1 - start + 1, 1), end - start + 1)
    return Decimal(elapsed) / Decimal(end - start + 1)


def completion_factor(factors: tuple[Decimal, ...], lag: int) -> Decimal:
    return factors[lag] if 0 <= lag < len(factors) else ONE


def project(inputs: PositionInputs) -> Position:
    """The position: benchmark to date and for the year, spend completed and projected to the year, the
    settlement that implies, the downside exposure and the chances of clearing the MSR and crossing the MLR."""
    terms = inputs.terms
    notes: list[str] = []
    known_through, to_date = _months(terms, inputs.as_of)
    mm_total_by_type = _by_type(inputs.member_months, None)
    mm_to_date_by_type = _by_type(inputs.member_months, to_date)
    mm_total, mm_to_date = sum(mm_total_by_type.values()), sum(mm_to_date_by_type.values())
    try:
        basis, basis_error = benchmark_basis(terms, mm_total_by_type), None
    except SettlementError as exc:
        basis, basis_error = BenchmarkBasis({}), exc
    notes.extend(basis.notes)
    benchmark_total = _annual_benchmark(terms, basis, mm_total_by_type)
    benchmark_to_date = _annual_benchmark(terms, basis, mm_to_date_by_type)
    factors = _completion_factors(inputs, known_through, notes)
    incurred = _incurred(inputs, factors, known_through, notes)
    projected = _projected(terms, incurred, mm_to_date, mm_total, benchmark_total, notes)
    quality_score = inputs.quality_score if inputs.quality_score is not None else terms.quality_score
    standard = inputs.quality_standard or terms.quality_standard
    members = sum(inputs.members.values())
    settle_inputs = settlement_inputs(terms, members, benchmark_total, projected, quality_score, standard)
    unpriced = [t for t, n in mm_total_by_type.items() if n and terms.priced_types is not None and t not in terms.priced_types]
    result = _settled(settle_inputs, basis_error, unpriced)
    p_msr, p_mlr = _probabilities(result, projected, inputs.member_stats, mm_to_date, mm_total, basis.relative_sd)
    return Position(
        as_of=inputs.as_of,
        members=members,
        member_months_to_date=mm_to_date,
        member_months_total=mm_total,
        benchmark_to_date=to_cents(benchmark_to_date),
        benchmark_total=to_cents(benchmark_total),
        paid_to_date=sum(inputs.paid_by_month.values(), ZERO),
        incurred_to_date=to_cents(incurred),
        projected_expenditure=to_cents(projected),
        settlement=result,
        downside_exposure_now=-result.earned if result.earned < 0 else ZERO,
        downside_exposure_at_cap=to_cents(result.loss_cap_amount) if result.loss_cap_amount is not None else ZERO,
        probability_clears_msr=p_msr,
        probability_crosses_mlr=p_mlr,
        quality_score=quality_score,
        explanation=(*notes, *result.explanation),
    )


def _months(terms: ContractTerms, as_of: date | None) -> tuple[int | None, int]:
    """(the month claims are known through, the last month member-months count to), as year * 12 + month - 1:
    the latest paid date's month, which may be after the period; and that month within the period (before its
    start when nothing is known)."""
    start = terms.period_start.year * 12 + terms.period_start.month - 1
    end = terms.period_end.year * 12 + terms.period_end.month - 1
    known = None if as_of is None else as_of.year * 12 + as_of.month - 1
    return known, start - 1 if known is None else min(known, end)


def _completion_factors(inputs: PositionInputs, known_through: int | None, notes: list[str]) -> tuple[Decimal, ...]:
    """The contract's own factors win: the chain ladder is estimated only for contracts without them."""
    terms = inputs.terms
    if terms.completion_factors:
        notes.append("completion factors: the contract's")
        return terms.completion_factors
    estimated = None if known_through is None else estimate_completion(inputs.paid_by_lag, known_through)
    if estimated is not None:
        notes.append("completion factors: estimated from the contract's paid-date history (chain ladder)")
        return estimated
    notes.append("completion factors: the default run-out curve (too little paid-date history to estimate)")
    return DEFAULT_COMPLETION


def _incurred(inputs: PositionInputs, factors: tuple[Decimal, ...], known_through: int | None, notes: list[str]) -> Decimal:
    """Paid to date completed by each service month's run-out, measured to the latest paid date; truncated as the
    paid spend is where the contract truncates per-member spend."""
    incurred = ZERO
    for key, amount in inputs.paid_by_month.items():
        lag = 0 if known_through is None else known_through - month_index(key)
        incurred += amount / completion_factor(factors, lag)
    stats = inputs.member_stats
    if inputs.terms.truncation_threshold and stats.total > 0:
        # Truncation removes the same share of incurred spend as of paid spend.
        incurred = incurred * stats.truncated_total / stats.total
        notes.append("per-member spend truncated at the contract's annual thresholds, prorated to the months elapsed")
    return incurred


def _projected(
    terms: ContractTerms, incurred: Decimal, mm_to_date: int, mm_total: int, benchmark_total: Decimal, notes: list[str]
) -> Decimal:
    """The year's expenditure: incurred to date carried to the year's member-months (or the capitation amount),
    with a stop-loss charge in place of spend above the attachment point."""
    if terms.capitation_pmpm is not None:
        projected = terms.capitation_pmpm * mm_total
        notes.append("capitation: the payer's spend is replaced by the capitation amount")
    elif mm_to_date > 0:
        projected = incurred + incurred / mm_to_date * (mm_total - mm_to_date)
    else:
        projected = benchmark_total  # nothing known yet: assume spend runs at the benchmark
        notes.append("no member-months elapsed: projection assumes spend equal to the benchmark")
    notes.append(describe(terms.counted_claim_types))
    if terms.stop_loss_charge_pmpm is not None and terms.capitation_pmpm is None:
        projected += terms.stop_loss_charge_pmpm * mm_total
        notes.append(f"stop-loss: spend above the attachment point replaced by a charge of {terms.stop_loss_charge_pmpm} PMPM")
    return projected


def settlement_inputs(
    terms: ContractTerms,
    members: int,
    benchmark_total: Decimal,
    projected: Decimal,
    quality_score: Decimal | None,
    standard: QualityStandard,
) -> SettlementInputs:
    """The settlement of the contract's terms at the projected totals: the one mapping from terms to inputs."""
    return SettlementInputs(
        program=terms.program,
        track=terms.track,
        performance_year=terms.performance_year,
        assigned_beneficiaries=members,
        benchmark_total=benchmark_total if benchmark_total > 0 else ONE,
        expenditure_total=projected,
        msr=terms.msr,
        mlr=terms.mlr,
        quality_score=quality_score,
        quality_standard=standard,
        euc_share=terms.euc_share,
        participant_revenue=terms.participant_revenue,
        two_sided_year=terms.two_sided_year,
        sharing_rate=terms.sharing_rate,
        loss_sharing_rate=terms.loss_sharing_rate,
        quality_scaled_sharing=terms.quality_scaled_sharing,
        savings_cap=terms.savings_cap,
        savings_cap_amount=terms.savings_cap_amount,
        loss_cap=terms.loss_cap,
        loss_cap_amount=terms.loss_cap_amount,
        sequestration=terms.sequestration,
        corridors=terms.corridors,
        discount=terms.discount,
        quality_withhold=terms.quality_withhold,
        minimum_members=terms.minimum_members,
        revenue_category=terms.revenue_category,
        participation_months=terms.participation_months,
        advance_payment_recoupment=terms.advance_payment_recoupment,
        prepaid_shared_savings=terms.prepaid_shared_savings,
        agreement_start=agreement_start(terms),
    )


def _settled(inputs: SettlementInputs, basis_error: SettlementError | None, unpriced: list[EnrollmentType]) -> Settlement:
    """The settlement, or, where the terms cannot settle yet, one that says why: a running position must never
    stop the stream."""
    try:
        if basis_error is not None:
            raise basis_error
        if unpriced:
            raise SettlementError(
                f"benchmark_per_capita: the roster has {', '.join(unpriced)} members, whose benchmark the terms do not give"
            )
        return settle(inputs)
    except SettlementError as exc:
        return unsettled(inputs.benchmark_total, inputs.expenditure_total, str(exc))


def _probabilities(
    result: Settlement,
    projected: Decimal,
    stats: MemberStats,
    mm_to_date: int,
    mm_total: int,
    benchmark_relative_sd: Decimal = ZERO,
) -> tuple[Decimal, Decimal]:
    """P(savings rate >= MSR) and P(loss rate >= MLR), treating the projected total as normal with the
    standard error that the spread of per-member spend gives (annualized by member-months), and the benchmark
    as normal with the spread its trend scenarios give, independent of the spend."""
    benchmark = result.benchmark_total
    clear_at = benchmark * (ONE - result.msr)
    cross_at = benchmark * (ONE + result.mlr)
    n = stats.members
    if n < 2 or mm_to_date == 0:
        se = ZERO
    else:
        mean = stats.total / n
        variance = max(stats.sum_of_squares / n - mean * mean, ZERO) * n / (n - 1)
        scale = Decimal(mm_total) / Decimal(mm_to_date)
        se = (variance * n).sqrt() * scale  # SE of the projected total: sqrt(N * var) scaled to the year
    benchmark_sd = benchmark * benchmark_relative_sd
    se_clear = (se * se + (benchmark_sd * (ONE - result.msr)) ** 2).sqrt()
    se_cross = (se * se + (benchmark_sd * (ONE + result.mlr)) ** 2).sqrt()
    if se_clear == 0:
        return (ONE if projected <= clear_at else ZERO), (ONE if projected >= cross_at and result.two_sided else ZERO)
    p_clear = normal_cdf((clear_at - projected) / se_clear)
    p_cross = ONE - normal_cdf((cross_at - projected) / se_cross) if result.two_sided else ZERO
    places = Decimal("0.0001")
    return p_clear.quantize(places), p_cross.quantize(places)
