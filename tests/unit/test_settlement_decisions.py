"""Settlement's decisions without a database: a batch of spend as the sums it adds, and a contract's position
event from a snapshot of what settlement holds (a fake of the repository's read)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

from services.settlement.domain.contract_position import Snapshot, aggregate, payment_lag, position_event
from shared.events import ContractState, RosterSummary
from tests.terms import mssp_terms, spend_deltas

ROSTER = RosterSummary(
    members={"aged_nondual": 100}, member_months={f"2025-{m:02d}": {"aged_nondual": 100} for m in range(1, 13)}
)


def state(**terms: object) -> ContractState:
    return ContractState(
        contract_id="C1", version=3, name="c", payer="CMS", terms=mssp_terms(**terms), roster=ROSTER,
        changed_by="t", changed_at=datetime(2025, 1, 1, tzinfo=UTC),
    )  # fmt: skip


def snapshot(**kw: object) -> Snapshot:
    base: dict[str, object] = {
        "paid_by_month": {"2025-01": D("80000"), "2025-02": D("80000")}, "members": 90, "total": D("160000"),
        "sum_of_squares": D("900000000"), "truncated_total": D("160000"), "lines": 1234, "as_of": date(2025, 3, 10),
        "quality_score": None, "quality_standard": None, "sequence": 41,
        "paid_by_lag": {("2025-01", 0): D("50000"), ("2025-01", 1): D("30000"), ("2025-02", 0): D("80000")},
    }  # fmt: skip
    return Snapshot(**{**base, **kw})  # type: ignore[arg-type]


def test_a_batch_adds_up_per_member_per_lag_and_per_contract() -> None:
    deltas = spend_deltas([("A", "m1", "10.50"), ("A", "m1", "-0.50"), ("A", "m2", "5"), ("B", "m1", "1")])
    deltas[2] = deltas[2].model_copy(update={"paid_date": date(2025, 5, 2), "enrollment_type": "esrd"})
    spend = aggregate(deltas)
    assert spend.by_member == {
        ("A", "m1"): ("aged_nondual", D("10.00")),
        ("A", "m2"): ("esrd", D(5)),
        ("B", "m1"): ("aged_nondual", D(1)),
    }
    assert dict(spend.by_lag) == {
        ("A", date(2025, 3, 1), 0): D("10.00"),
        ("A", date(2025, 3, 1), 2): D(5),
        ("B", date(2025, 3, 1), 0): D(1),
    }
    assert spend.activity == {"A": (3, date(2025, 5, 2)), "B": (1, date(2025, 3, 15))}
    assert payment_lag(date(2025, 3, 1), date(2025, 2, 28)) == 0  # paid before the month (a correction): lag 0


def test_a_position_follows_its_snapshot_and_takes_the_next_sequence() -> None:
    p = position_event(state(), snapshot())
    assert (p.contract_id, p.contract_version, p.sequence, p.lines_applied) == ("C1", 3, 42, 1234)
    assert p.paid_to_date == D("160000") and p.paid_by_service_month == {"2025-01": D("80000"), "2025-02": D("80000")}
    assert p.member_months_to_date == 300 and p.gate != "cannot_settle"


def test_a_contract_that_cannot_settle_gets_a_position_saying_why() -> None:
    esrd_only = state().model_copy(update={"roster": RosterSummary(members={"esrd": 1}, member_months={"2025-01": {"esrd": 1}})})
    p = position_event(esrd_only, snapshot())
    assert p.gate == "cannot_settle" and p.sequence == 42 and p.paid_to_date == D("160000")
    assert p.explanation[-1].startswith("cannot settle: the position could not be computed")
