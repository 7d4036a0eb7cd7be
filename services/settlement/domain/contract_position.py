"""A contract's position event, decided without I/O: from its state (terms, roster) and what settlement holds of
it (a Snapshot), and the aggregation of a batch of spend deltas into the rows settlement adds them to. The
repository loads snapshots, calls these and saves what they return."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from services.settlement.domain.parameters import PARAMETERS_VERSION
from services.settlement.domain.position import MemberStats, PositionInputs, elapsed_share, project
from shared.events import ContractState, SettlementPosition, SpendDelta
from shared.money import ZERO
from shared.terms import ContractTerms, QualityStandard


@dataclass
class SpendAggregate:
    """A batch of deltas as the sums settlement adds: per (contract, member) with the member's latest enrollment
    type; per (contract, service month, payment lag in months); per contract, lines and the latest paid date."""

    by_member: dict[tuple[str, str], tuple[str, Decimal]] = field(default_factory=dict)
    by_lag: dict[tuple[str, date, int], Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))
    activity: dict[str, tuple[int, date]] = field(default_factory=dict)


def payment_lag(service_month: date, paid_date: date) -> int:
    """Whole months from the service month to payment (0: paid in the month of service; never negative)."""
    return max(0, (paid_date.year - service_month.year) * 12 + paid_date.month - service_month.month)


def aggregate(deltas: list[SpendDelta]) -> SpendAggregate:
    out = SpendAggregate()
    for d in deltas:
        out.by_lag[(d.contract_id, d.service_month, payment_lag(d.service_month, d.paid_date))] += d.amount
        _, amount = out.by_member.get((d.contract_id, d.member_id), (d.enrollment_type, ZERO))
        out.by_member[(d.contract_id, d.member_id)] = (d.enrollment_type, amount + d.amount)
        count, as_of = out.activity.get(d.contract_id, (0, d.paid_date))
        out.activity[d.contract_id] = (count + 1, max(as_of, d.paid_date))
    return out


@dataclass(frozen=True)
class Snapshot:
    """What settlement holds for one contract, read in one pass for a whole batch of contracts."""

    paid_by_month: dict[str, Decimal]
    members: int
    total: Decimal
    sum_of_squares: Decimal
    truncated_total: Decimal
    lines: int
    as_of: date | None
    quality_score: Decimal | None
    quality_standard: QualityStandard | None
    sequence: int
    paid_by_lag: dict[tuple[str, int], Decimal]


def thresholds(terms: ContractTerms, as_of: date | None) -> dict[str, Decimal]:
    # Thresholds are annual: a member's spend to date is truncated at the share of the year elapsed, which is
    # truncating the member's annualized spend and scaling it back.
    share = elapsed_share(terms, as_of)
    return {k: v * share for k, v in (terms.truncation_threshold or {}).items()}


def position_event(state: ContractState, snap: Snapshot) -> SettlementPosition:
    """The contract's position, or, when it cannot be computed, a cannot_settle position that says why: one
    contract never stops the pass for the others."""
    try:
        return position(state, state.terms, snap)
    except (ArithmeticError, ValueError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}"
        return unsettled_position(state, snap, reason)


def unsettled_position(state: ContractState, snap: Snapshot, reason: str) -> SettlementPosition:
    terms = state.terms
    zero = Decimal(0)
    return SettlementPosition(
        contract_id=state.contract_id,
        contract_version=state.version,
        sequence=snap.sequence + 1,
        program=terms.program,
        track=terms.track,
        performance_year=terms.performance_year,
        as_of=snap.as_of,
        members=sum(state.roster.members.values()),
        member_months_to_date=0,
        member_months_total=sum(sum(m.values()) for m in state.roster.member_months.values()),
        lines_applied=snap.lines,
        benchmark_to_date=zero,
        benchmark_total=zero,
        paid_to_date=sum(snap.paid_by_month.values(), zero),
        paid_by_service_month=snap.paid_by_month,
        incurred_to_date=zero,
        projected_expenditure=zero,
        projected_gross_savings=zero,
        projected_savings_rate=zero,
        msr=zero,
        mlr=zero,
        gate="cannot_settle",
        quality_score=zero,
        final_sharing_rate=zero,
        projected_shared_savings_losses=zero,
        downside_exposure_now=zero,
        downside_exposure_at_cap=zero,
        probability_clears_msr=zero,
        probability_crosses_mlr=zero,
        parameters_version=PARAMETERS_VERSION,
        explanation=(f"cannot settle: the position could not be computed ({reason})",),
    )


def position(state: ContractState, terms: ContractTerms, snap: Snapshot) -> SettlementPosition:
    cid = state.contract_id
    roster_members = sum(state.roster.members.values())
    p = project(
        PositionInputs(
            terms=terms,
            members=state.roster.members,
            member_months=state.roster.member_months,
            paid_by_month=snap.paid_by_month,
            member_stats=MemberStats(
                members=max(roster_members, snap.members),
                total=snap.total,
                sum_of_squares=snap.sum_of_squares,
                truncated_total=snap.truncated_total,
            ),
            as_of=snap.as_of,
            quality_score=snap.quality_score,
            quality_standard=snap.quality_standard,
            paid_by_lag=snap.paid_by_lag,
        )
    )
    s = p.settlement
    paid_by_month = snap.paid_by_month
    return SettlementPosition(
        contract_id=cid,
        contract_version=state.version,
        sequence=snap.sequence + 1,
        program=terms.program,
        track=terms.track,
        performance_year=terms.performance_year,
        as_of=p.as_of,
        members=p.members,
        member_months_to_date=p.member_months_to_date,
        member_months_total=p.member_months_total,
        lines_applied=snap.lines,
        benchmark_to_date=p.benchmark_to_date,
        benchmark_total=p.benchmark_total,
        paid_to_date=p.paid_to_date,
        paid_by_service_month=paid_by_month,
        incurred_to_date=p.incurred_to_date,
        projected_expenditure=p.projected_expenditure,
        projected_gross_savings=s.gross_savings.quantize(Decimal("0.01")),
        projected_savings_rate=s.savings_rate.quantize(Decimal("0.0000000001")),
        msr=s.msr.quantize(Decimal("0.0000000001")),
        mlr=s.mlr.quantize(Decimal("0.0000000001")),
        gate=s.gate,
        quality_score=p.quality_score,
        final_sharing_rate=s.final_sharing_rate.quantize(Decimal("0.0000000001")),
        projected_shared_savings_losses=s.earned,
        advance_payment_recoupment=s.advance_payment_recoupment,
        prepaid_savings_recoupment=s.prepaid_savings_recoupment,
        prepaid_savings_outstanding=s.prepaid_savings_outstanding,
        downside_exposure_now=p.downside_exposure_now,
        downside_exposure_at_cap=p.downside_exposure_at_cap,
        probability_clears_msr=p.probability_clears_msr,
        probability_crosses_mlr=p.probability_crosses_mlr,
        parameters_version=PARAMETERS_VERSION,
        explanation=p.explanation,
    )
