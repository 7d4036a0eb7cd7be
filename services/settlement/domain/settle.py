"""Settling a period: from benchmark and expenditure totals to the shared savings paid or losses owed.

One function, `settle`, for every program: MSSP tracks, ACO REACH and commercial terms. The parameter
table gives the program defaults; `SettlementInputs` carries the contract's own figures and overrides.
Amounts stay exact until the one named rounding step (`to_cents` on the earned amount).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from services.settlement.domain.parameters import (
    BELOW_MSR_MIN_BENEFICIARIES,
    MSR_BANDS,
    MSR_FLOOR,
    PARAMETERS_VERSION,
    PREPAID_SAVINGS_FROM,
    REACH_WORST_CASE_LOSS,
    TrackParameters,
    euc_blanket_offset,
    quality_rule,
    reach_corridors,
    reach_discount,
    reach_quality_withhold,
    sequestration_rate,
    track_parameters,
)
from shared.money import ONE, ZERO, to_cents
from shared.terms import CorridorBand, QualityStandard, RevenueCategory

Gate = Literal["savings", "savings_below_msr", "losses", "neutral", "below_minimum", "cannot_settle"]
TWELVE = Decimal(12)


class SettlementError(ValueError):
    """The inputs cannot be settled; the message names the input and why."""


@dataclass(frozen=True)
class SettlementInputs:
    program: str
    track: str
    performance_year: int
    assigned_beneficiaries: int
    benchmark_total: Decimal
    expenditure_total: Decimal
    msr: Decimal | None = None
    mlr: Decimal | None = None
    quality_score: Decimal | None = None  # None: no score published (pay-for-reporting year)
    quality_standard: QualityStandard = "met"
    euc_loss_adjustment: Decimal | None = None  # an amount (<= 0) published by CMS
    euc_share: Decimal = ZERO  # months affected / 12 * share of beneficiaries in affected areas
    participant_revenue: Decimal | None = None
    revenue_based_loss_cap: bool | None = None
    two_sided_year: int = 1
    sharing_rate: Decimal | None = None
    loss_sharing_rate: Decimal | None = None
    quality_scaled_sharing: bool = False
    savings_cap: Decimal | None = None
    savings_cap_amount: Decimal | None = None
    loss_cap: Decimal | None = None
    loss_cap_amount: Decimal | None = None
    sequestration: Decimal | None = None
    corridors: tuple[CorridorBand, ...] | None = None
    discount: Decimal | None = None
    quality_withhold: Decimal | None = None
    minimum_members: int = 0
    # CMS's high/low revenue class (42 CFR 425.20): low-revenue BASIC ACOs may share savings below the MSR.
    revenue_category: RevenueCategory | None = None
    # Months of the year the ACO took part in, when it terminated during the year: losses are prorated.
    participation_months: int | None = None
    advance_payment_recoupment: Decimal | None = None  # advance investment payments due back (>= 0)
    prepaid_shared_savings: Decimal | None = None  # prepaid shared savings received for the year (>= 0)
    # A six-month performance period (42 CFR 425.609): totals are for the period, an EUC amount for the year.
    period_months: int = 12
    # The start of the ACO's current agreement period: some rules apply by agreement (savings below the MSR).
    agreement_start: date | None = None
    # The ACPT guardrail applied (42 CFR 425.652(b)(5)): losses past the MLR under the three-way blend, so the totals
    # given are the two-way blend's; savings under those are neither shared nor are losses owed.
    benchmark_guardrail: bool = False


@dataclass(frozen=True)
class Settlement:
    benchmark_total: Decimal  # after REACH discount and withhold, when they apply
    expenditure_total: Decimal
    gross_savings: Decimal  # negative: gross losses
    savings_rate: Decimal
    msr: Decimal
    mlr: Decimal
    two_sided: bool
    gate: Gate
    final_sharing_rate: Decimal
    loss_sharing_rate: Decimal
    sequestration: Decimal
    savings_cap_amount: Decimal | None
    loss_cap_amount: Decimal | None  # positive; None for one-sided terms
    euc_adjustment: Decimal  # >= 0: the part of the losses forgiven
    earned: Decimal  # > 0 shared savings paid, < 0 shared losses owed; rounded to the cent
    # Recouped from the earned savings (never inside `earned`): what is paid is earned - both recoupments.
    advance_payment_recoupment: Decimal = ZERO
    prepaid_savings_recoupment: Decimal = ZERO
    # Prepaid shared savings the earned savings did not cover: still owed by the ACO.
    prepaid_savings_outstanding: Decimal = ZERO
    parameters_version: str = PARAMETERS_VERSION
    explanation: tuple[str, ...] = field(default=())


def one_sided_msr(assigned_beneficiaries: int) -> Decimal:
    """The MSR from the one-sided table; below 5,000 beneficiaries CMS sets it outside the table."""
    n = assigned_beneficiaries
    if n < MSR_BANDS[0][0]:
        raise SettlementError(f"msr: with {n} assigned beneficiaries (< 5,000) the MSR is not given by the table; supply it")
    for low, high, at_low, at_high in MSR_BANDS:
        if low <= n <= high:
            return at_low + (at_high - at_low) * Decimal(n - low) / Decimal(high - low)
    return MSR_FLOOR


def published_msr(published: Decimal, assigned_beneficiaries: int) -> Decimal:
    """The MSR behind a published, rounded one: CMS prints the table's value to a few places (0.0298 for
    2.9836%), and a savings rate between the two would pass or fail the gate wrongly. Where the table's
    value rounds to the published figure it is the MSR; otherwise (an elected MSR, or fewer than 5,000
    beneficiaries) the published figure is."""
    if assigned_beneficiaries < MSR_BANDS[0][0] or published <= 0:
        return published
    exponent = published.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if places < 4:
        return published  # elected MSRs are whole tenths of a point (0.5%, 1.0%, ...): never a rounded table value
    table = one_sided_msr(assigned_beneficiaries)
    if table != published and abs(table - published) <= Decimal(5).scaleb(-(places + 1)):
        return table
    return published


def corridor_amount(gross: Decimal, benchmark: Decimal, bands: tuple[CorridorBand, ...]) -> Decimal:
    """What the ACO keeps of gross savings (or owes of gross losses) under marginal corridors."""
    magnitude = abs(gross)
    kept = ZERO
    lower = ZERO
    for band in bands:
        upper = magnitude if band.upper is None else min(magnitude, band.upper * benchmark)
        if upper > lower:
            kept += (upper - lower) * band.share
        if band.upper is None or magnitude <= band.upper * benchmark:
            break
        lower = band.upper * benchmark
    return kept if gross >= 0 else -kept


def _final_sharing_rate(inputs: SettlementInputs, max_rate: Decimal, notes: list[str]) -> Decimal:
    standard, score = inputs.quality_standard, inputs.quality_score
    if inputs.program == "COMMERCIAL":
        if standard == "not_met":
            return ZERO
        return max_rate * (score if inputs.quality_scaled_sharing and score is not None else ONE)
    if standard == "not_met":
        notes.append("quality standard not met: no shared savings")
        return ZERO
    if standard == "reporting" or score is None:
        notes.append("pay-for-reporting: full sharing rate")
        return max_rate
    rule = quality_rule(inputs.performance_year)
    if rule == "scaled":
        return max_rate * score
    if standard == "met":
        return max_rate
    if rule == "all_or_nothing":
        notes.append(f"PY{inputs.performance_year} has no alternative quality standard: no shared savings")
        return ZERO
    notes.append(f"alternative quality standard: sharing rate scaled by the quality score {score}")
    return max_rate * score


def _loss_sharing_rate(inputs: SettlementInputs, params: TrackParameters, final_rate: Decimal) -> Decimal:
    if inputs.loss_sharing_rate is not None:
        return inputs.loss_sharing_rate
    if params.loss_rate_rule == "fixed":
        return params.loss_rate
    if params.loss_rate_rule == "none":
        return ZERO
    if params.quality_scaled_loss_from is not None and inputs.performance_year >= params.quality_scaled_loss_from:
        if inputs.quality_standard == "not_met":
            return params.loss_rate_ceiling
        score = ONE if inputs.quality_score is None else inputs.quality_score
        rate = ONE - params.max_sharing_rate * score
    else:
        rate = ONE - final_rate
    return min(max(rate, params.loss_rate_floor), params.loss_rate_ceiling)


def _reach_benchmark(inputs: SettlementInputs, notes: list[str]) -> Decimal:
    year = inputs.performance_year
    discount = inputs.discount if inputs.discount is not None else reach_discount(inputs.track, year)
    withhold = inputs.quality_withhold if inputs.quality_withhold is not None else reach_quality_withhold(year)
    discounted = inputs.benchmark_total * (ONE - discount)
    withheld = discounted * withhold
    score = ZERO if inputs.quality_standard == "not_met" else (ONE if inputs.quality_score is None else inputs.quality_score)
    notes.append(f"REACH: discount {discount}, quality withhold {withhold}, earned back at quality {score}")
    return discounted - withheld + withheld * score


def _msr_mlr(inputs: SettlementInputs, reach: bool) -> tuple[Decimal, Decimal]:
    if reach:
        return ZERO, ZERO
    if inputs.msr is not None:
        return inputs.msr, inputs.mlr if inputs.mlr is not None else inputs.msr
    if inputs.program == "COMMERCIAL" and inputs.assigned_beneficiaries < MSR_BANDS[0][0]:
        return ZERO, ZERO
    msr = one_sided_msr(inputs.assigned_beneficiaries)
    return msr, msr


def _savings_cap(inputs: SettlementInputs, params: TrackParameters | None, benchmark: Decimal) -> Decimal | None:
    if inputs.savings_cap_amount is not None:
        return inputs.savings_cap_amount
    if inputs.savings_cap is not None:
        return inputs.savings_cap * benchmark
    return None if params is None else params.savings_cap * benchmark


def _below_msr_rate(inputs: SettlementInputs, params: TrackParameters | None, notes: list[str]) -> Decimal | None:
    """The sharing rate for savings below the MSR (42 CFR 425.605(h)), or None when the ACO is not eligible: a
    low-revenue BASIC ACO in an agreement period beginning on or after the rule's date, with 5,000 or more
    assigned beneficiaries, meeting the quality standard (the alternative standard scales the rate)."""
    if params is None or params.below_msr_rate is None or params.below_msr_agreements_from is None:
        return None
    if inputs.quality_standard in ("not_met", "reporting") or inputs.assigned_beneficiaries < BELOW_MSR_MIN_BENEFICIARIES:
        return None
    if inputs.agreement_start is None or inputs.revenue_category is None:
        if inputs.performance_year >= params.below_msr_agreements_from.year:
            unknown = "agreement start" if inputs.agreement_start is None else "revenue category"
            notes.append(f"{unknown} unknown: savings below the MSR (42 CFR 425.605(h)) not assessed")
        return None
    if inputs.agreement_start < params.below_msr_agreements_from or inputs.revenue_category != "low":
        return None
    if inputs.quality_standard == "alternative" and inputs.quality_score is not None:
        return params.below_msr_rate * inputs.quality_score
    return params.below_msr_rate


def _reach_worst_case(benchmark: Decimal, corridors: tuple[CorridorBand, ...], notes: list[str]) -> Decimal:
    """REACH has no loss cap: its worst case is stated at a gross loss of REACH_WORST_CASE_LOSS of the benchmark."""
    at = -REACH_WORST_CASE_LOSS * benchmark
    beyond = corridors[-1].share
    notes.append(
        f"REACH has no loss cap: worst case shown at gross losses of {REACH_WORST_CASE_LOSS:.0%} of the benchmark,"
        f" plus {beyond:.0%} of any loss beyond that"
    )
    return -corridor_amount(at, benchmark, corridors)


@dataclass(frozen=True)
class Resolved:
    """Every rate, cap and limit of the contract's program, track and year, from the parameter table with the
    contract's overrides applied: what `settle` gates on."""

    reach: bool
    params: TrackParameters | None  # None for ACO REACH (its figures are by track and year, not a track table)
    two_sided: bool
    benchmark: Decimal  # after REACH's discount and quality withhold
    msr: Decimal
    mlr: Decimal
    final_sharing_rate: Decimal  # the quality-adjusted rate on savings past the MSR
    loss_sharing_rate: Decimal
    sequestration: Decimal
    savings_cap: Decimal | None
    loss_cap: Decimal | None  # positive; None where no losses are owed
    corridors: tuple[CorridorBand, ...] | None


def _check(inputs: SettlementInputs) -> None:
    if inputs.benchmark_total <= 0:
        raise SettlementError("benchmark_total: must be positive")
    if inputs.expenditure_total < 0:
        raise SettlementError("expenditure_total: must not be negative")
    if inputs.participation_months is not None and not 1 <= inputs.participation_months <= 12:
        raise SettlementError("participation_months: must be between 1 and 12")


def resolve(inputs: SettlementInputs, notes: list[str]) -> Resolved:
    """The one place a settlement's rates, caps and limits come from. Raises SettlementError when the inputs
    cannot be settled."""
    _check(inputs)
    year = inputs.performance_year
    reach = inputs.program == "REACH"
    params = None if reach else track_parameters(inputs.program, inputs.track, year)
    two_sided = True if params is None else params.two_sided
    benchmark = _reach_benchmark(inputs, notes) if reach else inputs.benchmark_total
    msr, mlr = _msr_mlr(inputs, reach)
    max_rate = ONE if params is None else params.max_sharing_rate
    if inputs.sharing_rate is not None:
        max_rate = inputs.sharing_rate
    final_rate = _final_sharing_rate(inputs, max_rate, notes)
    seq = inputs.sequestration
    if seq is None:
        seq = sequestration_rate(year) if inputs.program in ("MSSP", "REACH") else ZERO
    corridors = inputs.corridors
    if corridors is None and reach:
        corridors = reach_corridors(inputs.track, year)
    savings_cap = _savings_cap(inputs, params, benchmark)
    return Resolved(
        reach=reach,
        params=params,
        two_sided=two_sided,
        benchmark=benchmark,
        msr=msr,
        mlr=mlr,
        final_sharing_rate=final_rate,
        loss_sharing_rate=ONE if params is None else _loss_sharing_rate(inputs, params, final_rate),
        sequestration=seq,
        savings_cap=savings_cap,
        loss_cap=loss_cap(inputs, params, two_sided, benchmark, corridors, notes),
        corridors=corridors,
    )


def loss_cap(
    inputs: SettlementInputs,
    params: TrackParameters | None,
    two_sided: bool,
    benchmark: Decimal,
    corridors: tuple[CorridorBand, ...] | None,
    notes: list[str],
) -> Decimal | None:
    """The most the ACO can owe (positive), the figure settlement caps losses at and exposure reports: the
    contract's own cap, else REACH's stated worst case, else the track's cap for the agreement's two-sided year
    (the lesser of the benchmark- and revenue-based caps where the track has both, 42 CFR 425.605(d)).
    None where no losses are owed."""
    if two_sided and inputs.loss_cap_amount is not None:
        return inputs.loss_cap_amount
    if two_sided and inputs.loss_cap is not None:
        return inputs.loss_cap * benchmark
    if inputs.program == "REACH" and corridors is not None:
        return _reach_worst_case(benchmark, corridors, notes)
    if not two_sided or params is None:
        return None
    if not params.loss_cap_benchmark:
        raise SettlementError(f"loss_cap: track {inputs.track} has no default loss cap; supply one")
    year_index = min(inputs.two_sided_year, len(params.loss_cap_benchmark)) - 1
    benchmark_cap = params.loss_cap_benchmark[year_index] * benchmark
    if params.loss_cap_revenue is None or inputs.revenue_based_loss_cap is False:
        return benchmark_cap
    if inputs.participant_revenue is None:
        notes.append("participant revenue unknown: loss cap is the benchmark-based cap")
        return benchmark_cap
    return min(params.loss_cap_revenue * inputs.participant_revenue, benchmark_cap)


# The outcome of the gates: which one, the sharing rate applied, the amount (before rounding), the EUC part.
Outcome = tuple[Gate, Decimal, Decimal, Decimal]


def settle(inputs: SettlementInputs) -> Settlement:
    """Settle one contract period: resolve its terms, pass the gates, round once, recoup. Raises SettlementError
    when the inputs cannot be settled."""
    notes: list[str] = []
    r = resolve(inputs, notes)
    gross = r.benchmark - inputs.expenditure_total
    rate = gross / r.benchmark
    gate, final_rate, amount, euc = _gates(inputs, r, gross, rate, notes)
    earned = to_cents(amount)
    advance, prepaid, outstanding = _recoupments(inputs, earned, notes)
    return Settlement(
        benchmark_total=r.benchmark,
        expenditure_total=inputs.expenditure_total,
        gross_savings=gross,
        savings_rate=rate,
        msr=r.msr,
        mlr=r.mlr,
        two_sided=r.two_sided,
        gate=gate,
        final_sharing_rate=final_rate,
        loss_sharing_rate=r.loss_sharing_rate,
        sequestration=r.sequestration,
        savings_cap_amount=r.savings_cap,
        loss_cap_amount=r.loss_cap,
        euc_adjustment=euc,
        earned=earned,
        advance_payment_recoupment=advance,
        prepaid_savings_recoupment=prepaid,
        prepaid_savings_outstanding=outstanding,
        explanation=tuple(notes),
    )


def _gates(inputs: SettlementInputs, r: Resolved, gross: Decimal, rate: Decimal, notes: list[str]) -> Outcome:
    """Which outcome the year has: too few members, the ACPT guardrail, shared savings (past the MSR, or below
    it where 425.605(h) allows), shared losses past the MLR, or neither."""
    neutral: Outcome = ("neutral", r.final_sharing_rate, ZERO, ZERO)
    below_rate = None if gross <= 0 or rate >= r.msr else _below_msr_rate(inputs, r.params, notes)
    if inputs.assigned_beneficiaries < inputs.minimum_members:
        notes.append(f"{inputs.assigned_beneficiaries} members is below the minimum {inputs.minimum_members}")
        return ("below_minimum", r.final_sharing_rate, ZERO, ZERO)
    if inputs.benchmark_guardrail and gross >= 0:
        notes.append(
            "ACPT guardrail: losses under the three-way blend, none under the two-way blend: neither shared savings nor"
            " shared losses (42 CFR 425.652(b)(5)(ii))"
        )
        return neutral
    if gross > 0 and ((rate >= r.msr and (r.reach or r.final_sharing_rate > 0)) or below_rate):
        return _shared_savings(r, gross, rate, below_rate, notes)
    if gross > 0 and rate >= r.msr:
        return neutral  # savings past the MSR, but quality earns nothing
    if r.two_sided and gross < 0 and rate <= -r.mlr:
        loss, euc = _shared_losses(inputs, r, gross, notes)
        return ("losses", r.final_sharing_rate, loss + euc, euc)
    if gross > 0:
        notes.append(f"savings rate {rate:.4%} below the MSR {r.msr:.4%}")
    elif gross < 0 and r.two_sided:
        notes.append(f"loss rate {-rate:.4%} inside the MLR {r.mlr:.4%}")
    return neutral


def _shared_savings(r: Resolved, gross: Decimal, rate: Decimal, below_rate: Decimal | None, notes: list[str]) -> Outcome:
    """What is paid of gross savings: at the final rate (through REACH's corridors), or at the below-MSR rate;
    after sequestration, within the savings cap."""
    if rate >= r.msr:
        gate: Gate = "savings"
        final_rate = r.final_sharing_rate
        if r.corridors is not None:
            shared = corridor_amount(gross, r.benchmark, r.corridors) * (final_rate if not r.reach else ONE)
        else:
            shared = gross * final_rate
    else:
        assert below_rate is not None
        gate, final_rate = "savings_below_msr", below_rate
        shared = gross * below_rate
        notes.append(
            f"savings rate {rate:.4%} below the MSR {r.msr:.4%}: a low-revenue BASIC ACO in an agreement from"
            f" 2024 meeting the quality standard shares at {below_rate:.2%} (42 CFR 425.605(h))"
        )
    earned = shared * (ONE - r.sequestration)
    if r.savings_cap is not None and earned > r.savings_cap:
        notes.append("shared savings limited by the savings cap")
        earned = r.savings_cap
    return (gate, final_rate, earned, ZERO)


def _shared_losses(inputs: SettlementInputs, r: Resolved, gross: Decimal, notes: list[str]) -> tuple[Decimal, Decimal]:
    """(shared losses, negative; the part of them forgiven for extreme and uncontrollable circumstances): at the
    loss rate (through corridors), within the loss cap, prorated for a termination during the year."""
    loss = corridor_amount(gross, r.benchmark, r.corridors) if r.corridors is not None else gross * r.loss_sharing_rate
    if r.loss_cap is not None and -loss > r.loss_cap:
        notes.append("shared losses limited by the loss cap")
        loss = -r.loss_cap
    if inputs.participation_months is not None and inputs.participation_months < 12:
        loss = loss * Decimal(inputs.participation_months) / TWELVE
        notes.append(f"terminated during the year: losses prorated to {inputs.participation_months} of 12 months")
    return loss, _euc_offset(inputs, loss, notes)


def _euc_offset(inputs: SettlementInputs, loss: Decimal, notes: list[str]) -> Decimal:
    """The part of shared losses (negative) forgiven: the COVID-19 blanket share, else CMS's published amount
    (prorated to a six-month period), else the contract's affected share."""
    year = inputs.performance_year
    blanket = euc_blanket_offset(year) if inputs.program == "MSSP" else ZERO
    if blanket > 0:
        notes.append(f"PY{year}: the COVID-19 EUC policy offsets {blanket:.0%} of shared losses")
        return -loss * blanket
    if inputs.euc_loss_adjustment is not None:
        annual = -inputs.euc_loss_adjustment
        if inputs.period_months != 12:
            notes.append(f"{inputs.period_months}-month period: the annual EUC adjustment prorated to it")
        return min(annual * Decimal(inputs.period_months) / TWELVE, -loss)
    return -loss * inputs.euc_share


def _recoupments(inputs: SettlementInputs, earned: Decimal, notes: list[str]) -> tuple[Decimal, Decimal, Decimal]:
    """(advance investment payments recouped, prepaid shared savings recouped, prepaid left owed), each from the
    earned savings, advance payments first (42 CFR 425.630; 425.640)."""
    left = max(earned, ZERO)
    advance = min(to_cents(inputs.advance_payment_recoupment or ZERO), left)
    if advance > 0:
        left -= advance
        notes.append(f"advance investment payments recouped from the shared savings: {advance} (paid {left})")
    prepaid_total = to_cents(inputs.prepaid_shared_savings or ZERO)
    if prepaid_total <= 0:
        return advance, ZERO, ZERO
    if inputs.performance_year < PREPAID_SAVINGS_FROM:
        raise SettlementError(
            f"prepaid_shared_savings: MSSP prepays shared savings from PY{PREPAID_SAVINGS_FROM} (42 CFR 425.640)"
        )
    prepaid = min(prepaid_total, left)
    outstanding = prepaid_total - prepaid
    notes.append(
        f"prepaid shared savings {prepaid_total}: {prepaid} recouped from the shared savings (paid {left - prepaid})"
        + (f", {outstanding} still owed" if outstanding else "")
    )
    return advance, prepaid, outstanding


def unsettled(benchmark: Decimal, expenditure: Decimal, reason: str) -> Settlement:
    """The outcome of terms that cannot be settled as they stand: nothing earned or owed, and why."""
    gross = benchmark - expenditure
    return Settlement(
        benchmark_total=benchmark,
        expenditure_total=expenditure,
        gross_savings=gross,
        savings_rate=gross / benchmark if benchmark else ZERO,
        msr=ZERO,
        mlr=ZERO,
        two_sided=False,
        gate="cannot_settle",
        final_sharing_rate=ZERO,
        loss_sharing_rate=ZERO,
        sequestration=ZERO,
        savings_cap_amount=None,
        loss_cap_amount=None,
        euc_adjustment=ZERO,
        earned=ZERO,
        explanation=(f"cannot settle: {reason}",),
    )
