"""Alert rules: thresholds, hysteresis, and how rule sets combine."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from services.notifications.domain.rules import RuleSet, RuleSpec, holds, pmpm_increase, transition


def run(spec: RuleSpec, values: list[D | None]) -> list[str]:
    active, out = False, []
    for v in values:
        now = holds(spec, v, active)
        kind = transition(active, now)
        if kind:
            out.append(kind)
        active = now
    return out


def test_hysteresis_raises_once_and_resolves_only_past_the_band() -> None:
    spec = RuleSpec(rule="projected_loss_above", threshold=D(100_000), band=D(5_000))
    # Crosses, wobbles around the threshold (inside the band), then clearly recovers.
    values = [D(90_000), D(100_001), D(99_000), D(100_500), D(96_000), D(94_999), D(94_000)]
    assert run(spec, values) == ["raised", "resolved"]


def test_no_value_keeps_the_state() -> None:
    spec = RuleSpec(rule="exposure_above_share_of_cap", threshold=D("0.5"))
    assert run(spec, [D("0.6"), None, None, D("0.4")]) == ["raised", "resolved"]


@given(st.lists(st.decimals(min_value=-10, max_value=10, places=2), max_size=200))
def test_transitions_alternate_and_never_repeat(values: list[D]) -> None:
    kinds = run(RuleSpec(rule="savings_below_msr", threshold=D(0), band=D("0.5")), list(values))
    assert all(a != b for a, b in itertools.pairwise(kinds))
    assert not kinds or kinds[0] == "raised"


def test_pmpm_increase_uses_the_last_two_complete_months() -> None:
    paid = {"2025-01": D(100), "2025-02": D(100), "2025-03": D(125), "2025-04": D(10)}
    assert pmpm_increase(paid, date(2025, 4, 15)) == D("0.25")
    assert pmpm_increase(paid, date(2025, 2, 3)) is None  # December is unknown
    assert pmpm_increase({"2024-12": D(50), "2025-01": D(40)}, date(2025, 2, 1)) == D("-0.2")


def test_contract_rules_add_to_and_replace_defaults() -> None:
    ruleset = RuleSet(
        defaults=(RuleSpec(rule="projected_loss_above", threshold=D(0)), RuleSpec(rule="savings_below_msr")),
        contracts={"C1": (RuleSpec(rule="projected_loss_above", threshold=D(50_000)),)},
    )
    stored = [RuleSpec(rule="no_claims_for_days", threshold=D(14))]
    rules = {r.id: r.threshold for r in ruleset.for_contract("C1", stored)}
    assert rules == {"projected_loss_above": D(50_000), "savings_below_msr": D(0), "no_claims_for_days": D(14)}
    assert {r.id for r in ruleset.for_contract("C2")} == {"projected_loss_above", "savings_below_msr"}


def test_webhook_signature_covers_time_and_body_within_a_window() -> None:
    from services.notifications.handlers import sign, verify

    header = sign("k" * 32, b'{"a":1}', at=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify("k" * 32, header, b'{"a":1}', now=1_700_000_100)
    assert not verify("k" * 32, header, b'{"a":1}', now=1_700_000_400)  # replayed after the 300 s window
    assert not verify("k" * 32, header, b'{"a":2}', now=1_700_000_100)
    assert not verify("x" * 32, header, b'{"a":1}', now=1_700_000_100)
