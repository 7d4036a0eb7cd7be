"""Versioned payload models for every topic in DESIGN.md, and the spec that ties each to its topic."""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.envelope import EventSpec
from shared.expenditure import ClaimType
from shared.money import Money, Rate
from shared.terms import ContractTerms, EnrollmentType, QualityStandard
from shared.text import Text

Identifier = str
_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")
AdjustmentType = Literal["original", "cancellation", "adjustment"]
ADJUSTMENT_ORDER: dict[str, int] = {"original": 0, "adjustment": 1, "cancellation": 2}
MAX_LINE_AMOUNT = Decimal("10000000")
EARLIEST_SERVICE = date(1990, 1, 1)


@lru_cache(maxsize=1)
def _latest_paid_date(minute: int) -> date:
    # 366 days, not replace(year=+1): that raises on 29 February, which would refuse every line that day.
    return date.today() + timedelta(days=366)


def latest_paid_date() -> date:
    """The latest paid date a claim line may carry. Worked out once a minute rather than per line: date.today()
    was a seventh of a claim line's validation."""
    return _latest_paid_date(int(time.time() // 60))


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClaimLine(Payload):
    """One claim line as the payer sent it (claims.submitted.v1). Amounts are unsigned as in CCLF:
    a cancellation negates; `signed_amount` gives the spend it stands for."""

    source: Text = Field(min_length=1, max_length=40)
    claim_id: Identifier = _ID
    line_number: int = Field(ge=0, le=9999)
    member_id: Identifier = _ID
    payer: Identifier = _ID
    claim_type: ClaimType
    adjustment_type: AdjustmentType = "original"
    from_date: date
    thru_date: date
    paid_date: date
    effective_date: date | None = None
    # The counted amount (shared/expenditure.py): for Part A claims the payment less the operating IME, operating
    # DSH and uncompensated-care payments; for Part D (CCLF7) 0, as CCLF carries no plan-paid amount.
    paid_amount: Money = Field(ge=-MAX_LINE_AMOUNT, le=MAX_LINE_AMOUNT)
    # The payment as the payer made it, where it differs from paid_amount (Part A: CLM_PMT_AMT, with the add-ons
    # paid_amount leaves out), kept for reconciliation; never counted.
    gross_amount: Money | None = Field(default=None, ge=-MAX_LINE_AMOUNT, le=MAX_LINE_AMOUNT)
    # The beneficiary's own payment (CCLF7 CLM_LINE_BENE_PMT_AMT): utilization detail, never spend.
    member_paid_amount: Money | None = Field(default=None, ge=-MAX_LINE_AMOUNT, le=MAX_LINE_AMOUNT)
    denied: bool = False
    # Lines sharing a version group are versions of one final-action claim (CCLF7 Part D): only the latest
    # by (effective_date, paid_date, claim_id) counts; the others are superseded.
    version_group: Text | None = Field(default=None, max_length=300)

    @model_validator(mode="after")
    def _dates(self) -> Self:
        if self.thru_date < self.from_date:
            raise ValueError("thru_date: before from_date")
        if self.from_date < EARLIEST_SERVICE:
            raise ValueError(f"from_date: before {EARLIEST_SERVICE}")
        if self.paid_date < self.from_date:
            raise ValueError("paid_date: before from_date")
        if self.paid_date > latest_paid_date():
            raise ValueError("paid_date: more than a year in the future")
        if self.gross_amount is not None and (
            abs(self.gross_amount) < abs(self.paid_amount) or self.gross_amount * self.paid_amount < 0
        ):
            raise ValueError("gross_amount: must be at least paid_amount, with the same sign")
        return self

    @property
    def signed_amount(self) -> Decimal:
        return -abs(self.paid_amount) if self.adjustment_type == "cancellation" else self.paid_amount

    @property
    def signed_gross(self) -> Decimal:
        gross = self.paid_amount if self.gross_amount is None else self.gross_amount
        return -abs(gross) if self.adjustment_type == "cancellation" else gross

    @property
    def version_rank(self) -> str:
        """Sorts the versions of one group: the greatest is the final action. Every part of the line key is in
        it, so two different lines never tie (a tie would leave both counting); on the same dates a
        cancellation comes after the adjustment and the original it acts on."""
        effective = (self.effective_date or self.paid_date).isoformat()
        order = ADJUSTMENT_ORDER[self.adjustment_type]
        return f"{effective}|{self.paid_date.isoformat()}|{self.claim_id}|{self.line_number:05d}|{order}|{self.source}"

    @property
    def line_key(self) -> str:
        """Identity of this row across re-deliveries: source, claim, line, adjustment type and effective date."""
        effective = (self.effective_date or self.paid_date).isoformat()
        return f"{self.source}|{self.claim_id}|{self.line_number}|{self.adjustment_type}|{effective}"


class RejectReason(Payload):
    field: str
    code: str
    message: str


class ClaimRejected(Payload):
    """claims.rejected.v1: what was refused, why, and the original bytes (text, or base64 when not UTF-8).
    Refused by claims_ingest: source_topic, partition and offset say where it was read. Refused by a file
    loader before publishing: source_topic is "file", with the file, line and format."""

    source_topic: str
    partition: int | None = None
    offset: int | None = None
    source_file: str | None = None
    source_line: int | None = None
    source_format: str | None = None
    reasons: tuple[RejectReason, ...]
    original: str
    original_encoding: Literal["utf-8", "base64"] = "utf-8"
    original_size: int | None = None  # set when the original was too big to keep whole: only its head is here


class ApiKeyChanged(Payload):
    """keys.v1: an API key created or revoked by the contracts service; the hash, never the key."""

    key_id: str = Field(min_length=1, max_length=64)
    name: Text = Field(min_length=1, max_length=100)
    role: Literal["viewer", "editor", "admin", "phi"]
    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    revoked: bool = False


class MemberIdChanged(Payload):
    """members.v1: a payer re-keyed a member (CCLF9: a new MBI); claims under previous_id belong to current_id."""

    payer: Identifier = _ID
    previous_id: Identifier = _ID
    current_id: Identifier = _ID
    effective_date: date | None = None
    source: Text = Field(min_length=1, max_length=40)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.previous_id == self.current_id:
            raise ValueError("current_id: equals previous_id")
        return self


class RosterSummary(Payload):
    """What settlement needs of a roster: member-months by calendar month (YYYY-MM) and enrollment type."""

    members: dict[EnrollmentType, int] = Field(default_factory=dict)
    member_months: dict[str, dict[EnrollmentType, int]] = Field(default_factory=dict)


class ContractState(Payload):
    """contracts.v1: the full state of a contract at one version (compacted by contract id)."""

    contract_id: Identifier = _ID
    version: int = Field(ge=1)
    name: Text = Field(min_length=1, max_length=200)
    payer: Identifier = _ID
    terms: ContractTerms
    roster: RosterSummary
    changed_by: str
    changed_at: datetime


class AttributionPeriod(Payload):
    start: date
    end: date
    enrollment_type: EnrollmentType


class Attribution(Payload):
    """attribution.v1: one member's periods in one contract as of a contract version (empty: removed)."""

    member_id: Identifier = _ID
    contract_id: Identifier = _ID
    payer: Identifier = _ID
    contract_version: int = Field(ge=1)
    periods: tuple[AttributionPeriod, ...]
    # The claim types whose spend counts in the contract (None, from events before they were sent: every type).
    claim_types: tuple[ClaimType, ...] | None = None


class QualityResult(Payload):
    contract_id: Identifier = _ID
    performance_year: int
    version: int = Field(ge=1)
    quality_score: Rate = Field(ge=0, le=1)
    quality_standard: QualityStandard


class SpendDelta(Payload):
    """The signed spend one claim line adds to (or, as a correction, takes from) one contract: one event on
    spend.v1 (still consumed, so nothing in flight is lost on upgrade), many in a SpendBatch on spend.v2."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    contract_id: Identifier = _ID
    """The contract the spend counts in (spend.v1's message key; on spend.v2 it routes to the batch's partition)."""
    member_id: Identifier = _ID
    """The member, by the newest id the payer gave them."""
    line_key: str
    """The claim line's identity across re-deliveries: source|claim id|line|adjustment type|effective date."""
    enrollment_type: EnrollmentType
    """The member's enrollment type in the period that covers the line (the benchmark it is priced against)."""
    claim_type: ClaimType
    service_month: date
    """The first day of the month the service was given in (the line's from date)."""
    paid_date: date
    """When the payer paid the line (the payment lag, service month to paid date, drives completion)."""
    amount: Money
    """Signed: what the line adds to the contract's spend, or (negative) takes back: a cancellation, a version
    superseded by a later one, a line whose member or period moved out of the contract."""


MAX_SPEND_BATCH = 1000


class SpendBatch(Payload):
    """spend.v2: the spend deltas one claims_ingest transaction produced for the contracts of one partition:
    every delta's contract id routes (by the default partitioner) to the partition of the message key, which
    is one of them. Deltas add up in any order; one message instead of one per delta spares the relay, the
    broker and settlement a message, a parse and a dedupe row per claim line."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    deltas: tuple[SpendDelta, ...] = Field(min_length=1, max_length=MAX_SPEND_BATCH)
    """Up to 1,000 deltas, of contracts on the key's partition."""


class Receipt(Payload):
    """spend.acks.v1, attribution.acks.v1: the events of a confirmed hop its consumer holds (applied in this
    transaction or before), by event id (shared/confirmations.py)."""

    event_ids: tuple[uuid.UUID, ...] = Field(min_length=1, max_length=10_000)


class SettlementPosition(Payload):
    """settlement.v1: the contract's running position after a change (METHODOLOGY.md section 4). Amounts are
    for the performance year; "to date" means as of `as_of`; projections are for the whole year."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    contract_id: Identifier = _ID
    """The contract (also the message key)."""
    contract_version: int
    """The version of the contract's terms and roster this position was computed with."""
    sequence: int
    """Increases by one with each position of the contract: a consumer keeps the highest it has seen."""
    program: str
    """MSSP, REACH or COMMERCIAL."""
    track: str
    """The program's track or arrangement (e.g. MSSP BE or EN, REACH GLOBAL)."""
    performance_year: int
    as_of: date | None
    """The latest paid date among the claim lines applied (None: no spend yet)."""
    members: int
    """Members on the contract's roster."""
    member_months_to_date: int
    """Attributed member-months in the months elapsed as of `as_of`."""
    member_months_total: int
    """Attributed member-months in the whole performance year."""
    lines_applied: int
    """Spend deltas applied so far (each claim line's, and each correction's)."""
    benchmark_to_date: Money
    """The benchmark for the member-months to date."""
    benchmark_total: Money
    """The benchmark for the year."""
    paid_to_date: Money
    """Spend paid to date: the sum of every delta applied."""
    paid_by_service_month: dict[str, Money]
    """Spend paid to date by service month (YYYY-MM)."""
    incurred_to_date: Money
    """Spend to date completed for claims not paid yet (completion factors by payment lag)."""
    projected_expenditure: Money
    """The year's expenditure projected from the incurred spend per member-month."""
    projected_gross_savings: Money
    """benchmark_total - projected_expenditure (negative: losses)."""
    projected_savings_rate: Rate = Field(ge=-100, le=100)
    """projected_gross_savings / benchmark_total."""
    msr: Rate
    """The minimum savings rate the savings rate must reach for savings to be shared."""
    mlr: Rate
    """The minimum loss rate the loss rate must reach for losses to be owed (0 for one-sided tracks)."""
    gate: str
    """What the projection settles as: savings, savings_below_msr, losses, neutral, below_minimum, or
    cannot_settle (the explanation says why)."""
    quality_score: Rate
    """The quality score the sharing rate uses: the year's recorded score, else the terms' (1 by default)."""
    final_sharing_rate: Rate
    """The share of savings (or of losses) that is the ACO's after quality."""
    projected_shared_savings_losses: Money
    """What the ACO is projected to earn (> 0) or owe (< 0) for the year, after caps and sequestration."""
    advance_payment_recoupment: Money = Decimal(0)
    """Advance investment payments recouped from the projected savings: paid = projected_shared_savings_losses - this
    - prepaid_savings_recoupment."""
    prepaid_savings_recoupment: Money = Decimal(0)
    """Prepaid shared savings (MSSP, PY2026+) recouped from the projected savings."""
    prepaid_savings_outstanding: Money = Decimal(0)
    """Prepaid shared savings the projected savings do not cover: still owed by the ACO."""
    downside_exposure_now: Money
    """The losses the ACO would owe on the projection, as a positive amount (0 when it projects savings)."""
    downside_exposure_at_cap: Money
    """The most the ACO can owe for the year: the loss cap (0 on a one-sided track)."""
    probability_clears_msr: Rate
    """The chance the year's savings rate reaches the MSR, from the spread of spend per member to date."""
    probability_crosses_mlr: Rate
    """The chance the year's loss rate reaches the MLR."""
    parameters_version: str
    """The version of the program parameters (caps, rates, sequestration) the settlement used."""
    explanation: tuple[str, ...] = ()
    """The settlement's steps in words, benchmark to earned (the waterfall)."""


class PositionFigures(Payload):
    """What a consumer that only judges a position's figures reads of settlement.v1 (notifications' rules): these
    fields, typed and described as in SettlementPosition; the rest of the event (the waterfall, the benchmark and
    the chances) is skipped unread. Decimals are what make a position costly to read,
    and a consumer of every position need not build those it does not use."""

    model_config = ConfigDict(extra="ignore")

    contract_id: Identifier = _ID
    sequence: int
    as_of: date | None
    member_months_to_date: int
    lines_applied: int
    paid_by_service_month: dict[str, Money]
    projected_savings_rate: Rate = Field(ge=-100, le=100)
    msr: Rate
    projected_shared_savings_losses: Money
    downside_exposure_now: Money
    downside_exposure_at_cap: Money


class NotificationEvent(Payload):
    """notifications.v1: an alert raised or resolved, or the outcome of delivering it to the webhook."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    alert_id: str
    """One alert: its raise, its resolution and their deliveries carry the same id."""
    contract_id: Identifier = _ID
    """The contract (also the message key); ALL for a portfolio-wide rule."""
    rule: str
    """The rule's id: its name, or its kind (projected_loss_above, savings_below_msr, exposure_above_share_of_cap,
    pmpm_increase_above, no_claims_for_days, rejected_rate_above)."""
    kind: Literal["raised", "resolved", "delivered", "failed"]
    """raised: the rule's number went past its threshold; resolved: it came back past threshold - band;
    delivered / failed: the webhook delivery of a raise or resolution succeeded, or used up its attempts."""
    detail: dict[str, Any] = Field(default_factory=dict)
    """For raised and resolved: description (the rule and threshold as text), value (the number the rule
    compared, a decimal string in the threshold's units: an amount in dollars, a rate as a fraction, days), and
    what was judged: a position's sequence, projected_shared_savings_losses, projected_savings_rate, msr,
    downside_exposure_now, downside_exposure_at_cap; days_without_claims; or submitted_24h and rejected_24h. For
    delivered and failed: delivery_id, attempts, alert_kind, and the error of the last attempt."""


class DeadLetter(Payload):
    source_topic: str
    partition: int
    offset: int
    consumer: str
    reasons: tuple[RejectReason, ...]
    original: str
    original_encoding: Literal["utf-8", "base64"] = "utf-8"
    original_size: int | None = None


CLAIM_SUBMITTED = EventSpec("claim_line.submitted", ClaimLine)
CLAIM_REJECTED = EventSpec("claim_line.rejected", ClaimRejected)
MEMBER_ID_CHANGED = EventSpec("member.id_changed", MemberIdChanged)
API_KEY_CHANGED = EventSpec("api_key.changed", ApiKeyChanged, decimals_as_text=True)
CONTRACT_CHANGED = EventSpec("contract.changed", ContractState, decimals_as_text=True)
ATTRIBUTION_CHANGED = EventSpec("attribution.changed", Attribution, decimals_as_text=True)
QUALITY_RECORDED = EventSpec("quality.recorded", QualityResult, decimals_as_text=True)
SPEND_APPLIED = EventSpec("spend.delta", SpendDelta, decimals_as_text=True)
SPEND_BATCH = EventSpec("spend.batch", SpendBatch, decimals_as_text=True)
RECEIPT = EventSpec("receipt", Receipt, decimals_as_text=True)
POSITION_UPDATED = EventSpec("settlement.position", SettlementPosition, decimals_as_text=True)
# The same events, read for their figures only.
POSITION_FIGURES = EventSpec("settlement.position", PositionFigures, decimals_as_text=True)
NOTIFICATION = EventSpec("notification", NotificationEvent, decimals_as_text=True)
DEAD_LETTER = EventSpec("dead_letter", DeadLetter, decimals_as_text=True)
