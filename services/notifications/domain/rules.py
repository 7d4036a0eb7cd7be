"""Alert rules, with no I/O. Each rule turns what we know of a contract into one number and compares it with
a threshold. Edge-triggered with hysteresis: an alert when the number first goes past the threshold, one
when it comes back past threshold - band, and nothing in between, however many events arrive."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events import PositionFigures

Transition = Literal["raised", "resolved"]
RuleKind = Literal[
    "projected_loss_above",  # threshold: an amount of projected shared loss
    "savings_below_msr",  # threshold: how far below the MSR (0 = any shortfall), as a rate
    "exposure_above_share_of_cap",  # threshold: exposure now / exposure at the loss cap, e.g. 0.5
    "pmpm_increase_above",  # threshold: month-over-month spend PMPM increase, e.g. 0.10 for 10%
    "no_claims_for_days",  # threshold: days without new spend for the contract
    "rejected_rate_above",  # threshold: rejected / submitted claim lines over the last day (portfolio-wide)
]
POSITION_RULES = frozenset({"projected_loss_above", "savings_below_msr", "exposure_above_share_of_cap", "pmpm_increase_above"})
# How far back the number must come before a raised alert resolves, when the rule does not say.
DEFAULT_BAND: dict[str, Decimal] = {
    "projected_loss_above": Decimal("1000"),
    "savings_below_msr": Decimal("0.002"),
    "exposure_above_share_of_cap": Decimal("0.02"),
    "pmpm_increase_above": Decimal("0.02"),
    "no_claims_for_days": Decimal("0"),
    "rejected_rate_above": Decimal("0.005"),
}
PORTFOLIO = "ALL"  # the contract id of portfolio-wide alerts


class RuleSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: RuleKind
    threshold: Decimal = Field(default=Decimal(0), allow_inf_nan=False)
    band: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False, description="hysteresis, in the threshold's units")
    name: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")

    @property
    def id(self) -> str:
        return self.name or self.rule

    @property
    def hysteresis(self) -> Decimal:
        return DEFAULT_BAND[self.rule] if self.band is None else self.band

    def describe(self) -> str:
        return f"{self.rule} {self.threshold}"


def holds(spec: RuleSpec, value: Decimal | None, was_active: bool) -> bool:
    """Whether the alert is on after seeing `value`: past the threshold to raise, back past
    threshold - band to resolve. No value (not computable yet) keeps the state as it was."""
    if value is None:
        return was_active
    if was_active:
        return value > spec.threshold - spec.hysteresis
    return value > spec.threshold


def transition(was_active: bool, active_now: bool) -> Transition | None:
    if active_now and not was_active:
        return "raised"
    if was_active and not active_now:
        return "resolved"
    return None


def _month_before(key: str) -> str:
    year, month = int(key[:4]), int(key[5:7])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def pmpm_increase(paid_by_month: Mapping[str, Decimal], as_of: date | None) -> Decimal | None:
    """The change in spend PMPM between the last two complete service months before as_of (the roster's
    members are the denominator of both, so the ratio of spend is the ratio of PMPM)."""
    if as_of is None:
        return None
    last = _month_before(f"{as_of:%Y-%m}")
    prior = _month_before(last)
    if last not in paid_by_month or prior not in paid_by_month or paid_by_month[prior] <= 0:
        return None
    return Decimal(paid_by_month[last]) / Decimal(paid_by_month[prior]) - 1


class Warmup(BaseModel):
    """When a contract's position says too little to judge: no elapsed member-month (nothing is known of the year
    yet) or too few claim lines applied. Position rules are not evaluated for it, so a brand-new contract raises
    nothing; an alert already raised stays as it is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_member_months: int = Field(default=1, ge=0)
    min_lines: int = Field(default=100, ge=0)

    def admits(self, p: PositionFigures) -> bool:
        return p.member_months_to_date >= self.min_member_months and p.lines_applied >= self.min_lines


def position_value(spec: RuleSpec, p: PositionFigures, warmup: Warmup) -> Decimal | None:
    """The number the rule compares; None (nothing to judge) while the contract is warming up or the number
    cannot be computed."""
    if not warmup.admits(p):
        return None
    if spec.rule == "projected_loss_above":
        return -p.projected_shared_savings_losses
    if spec.rule == "savings_below_msr":
        return p.msr - p.projected_savings_rate
    if spec.rule == "exposure_above_share_of_cap":
        return p.downside_exposure_now / p.downside_exposure_at_cap if p.downside_exposure_at_cap > 0 else None
    if spec.rule == "pmpm_increase_above":
        return pmpm_increase({k: Decimal(v) for k, v in p.paid_by_service_month.items()}, p.as_of)
    return None


class RuleSet(BaseModel):
    """Defaults for every contract, and per-contract rules that add to them (same id: replaces)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    warmup: Warmup = Warmup()
    defaults: tuple[RuleSpec, ...] = ()
    contracts: dict[str, tuple[RuleSpec, ...]] = Field(default_factory=dict)

    def for_contract(self, contract_id: str, stored: Iterable[RuleSpec] | None = None) -> tuple[RuleSpec, ...]:
        merged = {r.id: r for r in self.defaults}
        merged.update({r.id: r for r in self.contracts.get(contract_id, ())})
        if stored is not None:
            merged.update({r.id: r for r in stored})
        return tuple(merged.values())


def default_rules(loss_threshold: Decimal) -> RuleSet:
    return RuleSet(
        defaults=(
            RuleSpec(rule="projected_loss_above", threshold=loss_threshold),
            RuleSpec(rule="savings_below_msr"),
        )
    )


Key = tuple[str, str]  # (contract id, rule id)


@dataclass(frozen=True)
class Check:
    """One rule evaluated for one contract. sequence: the position's, so a late older one changes nothing
    (None for checks by the clock or by counts, which have no order of their own)."""

    contract_id: str
    spec: RuleSpec
    value: Decimal | None
    sequence: int | None
    detail: dict[str, Any]
    correlation_id: str | None = None  # of the event checked: its alert carries it

    @property
    def key(self) -> Key:
        return (self.contract_id, self.spec.id)


@dataclass(frozen=True)
class AlertState:
    active: bool = False
    last_sequence: int = 0
    alert_id: str | None = None


@dataclass(frozen=True)
class Alert:
    """A transition to announce: on notifications.v1 and to the webhook."""

    check: Check
    kind: Transition
    alert_id: str

    @property
    def detail(self) -> dict[str, Any]:
        """What the event's `detail` carries: the rule as text, the number it compared (a decimal string, in the
        threshold's units), and what the check adds (the position's figures, or the counts)."""
        value = None if self.check.value is None else str(self.check.value)
        return {"description": self.check.spec.describe(), "value": value, **self.check.detail}


def decide(
    checks: Sequence[Check], states: Mapping[Key, AlertState], new_id: Callable[[], str]
) -> tuple[dict[Key, AlertState], list[Alert]]:
    """Move the alert states through a batch of checks, in order: the states to store (every key checked) and
    the transitions to announce. A check older than the state's sequence changes nothing; a raise takes a new
    alert id, which its resolution carries."""
    after: dict[Key, AlertState] = dict(states)
    alerts: list[Alert] = []
    for c in checks:
        stored = c.key in after
        state = after.get(c.key, AlertState())
        if c.sequence is not None and stored and state.last_sequence >= c.sequence:
            continue  # an older position arriving late must not flip the state back
        kind = transition(state.active, holds(c.spec, c.value, state.active))
        alert_id = new_id() if kind == "raised" else state.alert_id
        active = kind == "raised" or (state.active and kind is None)
        after[c.key] = AlertState(active, c.sequence or state.last_sequence, alert_id)
        if kind is not None and alert_id is not None:
            alerts.append(Alert(c, kind, alert_id))
    return after, alerts
