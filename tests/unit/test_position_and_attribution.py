"""Running position math, roster member-months and attribution corrections: pure functions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from services.claims_ingest.domain.attribution import Emitted, batch_event_id, corrections, spend_identity
from services.contracts.domain.roster import RosterMember, changed_members, periods_of, summarize
from services.settlement.domain.position import MemberStats, PositionInputs, project
from services.settlement.domain.stats import normal_cdf
from shared.events import AttributionPeriod
from tests.terms import mssp_terms

TERMS = mssp_terms(completion_factors=(D("0.5"), D("0.8")))


def inputs(**kw: object) -> PositionInputs:
    base: dict[str, object] = {
        "terms": TERMS,
        "members": {"aged_nondual": 100},
        "member_months": {f"2025-{m:02d}": {"aged_nondual": 100} for m in range(1, 13)},
        "paid_by_month": {"2025-01": D("80000"), "2025-02": D("80000"), "2025-03": D("50000")},
        "member_stats": MemberStats(members=100, total=D("210000"), sum_of_squares=D("900000000"), truncated_total=D("210000")),
        "as_of": date(2025, 3, 20),
    }
    base.update(kw)
    return PositionInputs(**base)  # type: ignore[arg-type]


def test_benchmark_to_date_completion_and_projection() -> None:
    p = project(inputs())
    assert p.member_months_to_date == 300 and p.benchmark_to_date == D("300000.00")
    # March has lag 0 (factor 0.5), February lag 1 (0.8), January lag 2 (complete).
    assert p.incurred_to_date == D("80000") + D("100000") + D("100000")
    assert p.projected_expenditure == D("1120000.00")  # 280,000 over 300 member-months, for 1,200
    assert p.settlement.gate == "savings" and p.settlement.earned > 0
    assert D(0) <= p.probability_clears_msr <= D(1)


def test_terms_that_cannot_settle_give_a_position_that_says_why() -> None:
    terms = TERMS.model_copy(update={"msr": None})
    p = project(inputs(terms=terms))
    assert p.settlement.gate == "cannot_settle" and "msr" in p.explanation[-1]


def test_normal_cdf() -> None:
    assert normal_cdf(D(0)) == D("0.5")
    assert abs(normal_cdf(D("1.96")) - D("0.9750021")) < D("0.0000001")


def test_roster_member_months_and_changes() -> None:
    roster = [RosterMember(member_id="A"), RosterMember(member_id="B", start=date(2025, 7, 15))]
    periods = periods_of(roster, TERMS)
    summary = summarize(periods)
    assert summary.members == {"aged_nondual": 2}
    assert sum(m["aged_nondual"] for m in summary.member_months.values()) == 12 + 6
    after = periods_of([RosterMember(member_id="B")], TERMS)
    assert set(changed_members(periods, after)) == {"A", "B"} and changed_members(periods, after)["A"] == ()


def test_corrections_reverse_and_re_add() -> None:
    period = AttributionPeriod(start=date(2025, 1, 1), end=date(2025, 6, 30), enrollment_type="aged_nondual")
    lines = {"L1": (date(2025, 3, 1), D("10")), "L2": (date(2025, 9, 1), D("20"))}
    first = corrections(lines, {}, (period,))
    assert [(c.line_key, c.sign, c.amount) for c in first] == [("L1", "+", D("10"))]
    emitted = {"L1": Emitted(1, True, D("10"))}
    assert corrections(lines, emitted, (period,)) == []  # nothing changed: nothing emitted
    removed = corrections(lines, emitted, ())
    assert [(c.line_key, c.sign, c.amount) for c in removed] == [("L1", "-", D("-10"))]
    back = corrections(lines, {"L1": Emitted(1, False, D("10"))}, (period,))
    assert back[0].generation == 2
    assert spend_identity("L1", "K", 1, "+") != spend_identity("L1", "K", 2, "+")


def test_a_batch_id_is_its_deltas_identities_in_order_and_unambiguous() -> None:
    one, two = (
        spend_identity("S|C1|1|original|2025-01-02", "K", 1, "+"),
        spend_identity("S|C2|1|original|2025-01-02", "K", 1, "+"),
    )
    assert batch_event_id([one, two]) == batch_event_id([one, two])
    assert batch_event_id([one, two]) != batch_event_id([two, one])
    # A free-text source holding the separator does not make two different batches one event.
    assert batch_event_id(["a|b", "c"]) != batch_event_id(["a", "b|c"])


def test_position_says_what_counted_and_adds_a_stop_loss_charge() -> None:
    plain = project(inputs())
    assert any("Part D (pharmacy) does not count" in n for n in plain.explanation)
    terms = TERMS.model_copy(update={"truncation_threshold": {"aged_nondual": D("100000")}, "stop_loss_charge_pmpm": D("12.50")})
    insured = project(inputs(terms=terms))
    # 1,200 member-months at 12.50 on top of the same projection (no member near the attachment point).
    assert insured.projected_expenditure == plain.projected_expenditure + D("15000.00")
    assert any("stop-loss" in n for n in insured.explanation)


def test_reach_position_exposure_at_cap_from_the_corridors() -> None:
    terms = TERMS.model_copy(update={"program": "REACH", "track": "GLOBAL", "performance_year": 2025, "msr": None})
    p = project(inputs(terms=terms))
    # Benchmark 1.2M less the 4% discount and the 2% withhold earned back at quality 1: 1,152,000. At gross
    # losses of 50% of it: 25% kept whole, 10% at 50%, 15% at 25% -> 33.75% of 1,152,000.
    assert p.downside_exposure_at_cap == D("388800.00")
