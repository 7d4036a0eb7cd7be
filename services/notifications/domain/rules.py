"""Alert rules, with no I/O. Each rule turns what we know of a contract into one number and compares it with
a threshold. Edge-triggered with hysteresis: an alert when the number first goes past the threshold, one
when it comes back past threshold - band, and nothing in between, however many events arrive."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events import SettlementPosition

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


def position_value(spec: RuleSpec, p: SettlementPosition) -> Decimal | None:
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
