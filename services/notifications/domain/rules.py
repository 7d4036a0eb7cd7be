"""Alert rules on settlement positions, edge-triggered: an alert when a rule starts to hold, one when
it stops, nothing while it keeps holding (or keeps not holding)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from shared.events import SettlementPosition

Transition = Literal["raised", "resolved"]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    holds: Callable[[SettlementPosition], bool]


def projected_loss_above(amount: Decimal) -> Rule:
    return Rule(
        name="projected_loss_above",
        description=f"projected shared loss above {amount}",
        holds=lambda p: -p.projected_shared_savings_losses > amount,
    )


def savings_below_msr() -> Rule:
    return Rule(
        name="savings_below_msr",
        description="projected savings rate below the MSR",
        holds=lambda p: p.projected_savings_rate < p.msr,
    )


def default_rules(loss_threshold: Decimal) -> tuple[Rule, ...]:
    return (projected_loss_above(loss_threshold), savings_below_msr())


def transition(was_active: bool, holds_now: bool) -> Transition | None:
    if holds_now and not was_active:
        return "raised"
    if was_active and not holds_now:
        return "resolved"
    return None
