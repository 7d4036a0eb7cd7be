"""Alert rules: thresholds, hysteresis, and how rule sets combine."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from services.notifications.domain.rules import (
    AlertState,
    Check,
    RuleSet,
    RuleSpec,
    Warmup,
    decide,
    holds,
    pmpm_increase,
    position_value,
    transition,
)
from shared.events import PositionFigures


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


LOSS = RuleSpec(rule="projected_loss_above", threshold=D(1000), band=D(100))


def ids() -> Iterator[str]:
    return (f"alert-{n}" for n in itertools.count(1))


def test_decide_raises_once_resolves_with_the_same_id_and_ignores_late_positions() -> None:
    new_id = ids()
    store: dict[tuple[str, str], AlertState] = {}  # the alert_state table, as decide sees it
    seen: list[tuple[str, int, str]] = []
    for sequence, loss in [(1, 500), (2, 1500), (3, 1600), (1, 0), (4, 950), (5, 850)]:
        store, alerts = decide([Check("C1", LOSS, D(loss), sequence, {})], store, lambda: next(new_id))
        seen += [(a.kind, sequence, a.alert_id) for a in alerts]
    # Sequence 1 arriving again after 3 changes nothing; 950 is inside the band; 850 is past it.
    assert seen == [("raised", 2, "alert-1"), ("resolved", 5, "alert-1")]
    assert store[("C1", LOSS.id)] == AlertState(active=False, last_sequence=5, alert_id="alert-1")


def test_decide_in_one_batch_sees_its_own_transitions() -> None:
    checks = [Check("C1", LOSS, D(v), seq, {"n": seq}) for seq, v in enumerate([2000, 0, 2000], start=1)]
    states, alerts = decide(checks, {}, lambda: "same")
    assert [a.kind for a in alerts] == ["raised", "resolved", "raised"]
    assert alerts[0].detail == {"description": "projected_loss_above 1000", "value": "2000", "n": 1}
    assert states[("C1", LOSS.id)].active


def test_decide_without_a_sequence_is_by_the_clock_and_never_stale() -> None:
    quiet = RuleSpec(rule="no_claims_for_days", threshold=D(14))
    states, alerts = decide([Check("C1", quiet, D(15), None, {})], {("C1", quiet.id): AlertState(False, 9, None)}, lambda: "a")
    assert [a.kind for a in alerts] == ["raised"] and states[("C1", quiet.id)].last_sequence == 9


def _position(member_months: int, lines: int, loss: int) -> PositionFigures:
    zero = D(0)
    return PositionFigures(
        contract_id="C1", sequence=1, as_of=date(2025, 1, 1), member_months_to_date=member_months, lines_applied=lines,
        paid_by_service_month={}, projected_savings_rate=zero, msr=D("0.02"), projected_shared_savings_losses=D(-loss),
        downside_exposure_now=zero, downside_exposure_at_cap=zero,
    )  # fmt: skip


def test_a_contract_warming_up_is_not_judged() -> None:
    warmup = Warmup(min_member_months=1, min_lines=100)
    msr = RuleSpec(rule="savings_below_msr")
    # A brand-new contract: no member-month elapsed, no claims; the savings rate 0 is below the MSR of 2%.
    assert position_value(msr, _position(0, 0, 0), warmup) is None
    assert position_value(LOSS, _position(600, 99, 5000), warmup) is None
    assert position_value(LOSS, _position(600, 100, 5000), warmup) == D(5000)
    assert position_value(msr, _position(600, 100, 0), Warmup(min_member_months=0, min_lines=0)) == D("0.02")
    # Nothing to judge keeps an alert as it was, raised or not.
    states, alerts = decide([Check("C1", LOSS, None, 7, {})], {("C1", LOSS.id): AlertState(True, 6, "a")}, lambda: "b")
    assert alerts == [] and states[("C1", LOSS.id)] == AlertState(True, 7, "a")


def test_the_warmup_is_tuned_in_the_rules_file() -> None:
    ruleset = RuleSet.model_validate({"warmup": {"min_lines": 5}, "defaults": [{"rule": "savings_below_msr"}]})
    assert ruleset.warmup == Warmup(min_member_months=1, min_lines=5)
    assert RuleSet().warmup.min_lines == 100
