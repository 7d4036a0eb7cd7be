"""The claim rules, decided without a database: what counts, what a line stands for, which versions lose their
place, where spend goes. The same functions serve claims_ingest and `acoflow load --dry-run`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.claims_ingest.domain.claims import Assignment, Version, admissible, attribute, losers
from services.claims_ingest.domain.versions import Ledger
from shared.events import AttributionPeriod, ClaimLine
from shared.expenditure import line_spend

YEAR = (AttributionPeriod(start=date(2025, 1, 1), end=date(2025, 12, 31), enrollment_type="aged_nondual"),)


def line(n: int, **kw: Any) -> ClaimLine:
    base: dict[str, Any] = {
        "source": "t", "claim_id": f"C{n}", "line_number": 1, "member_id": "M1", "payer": "CMS",
        "claim_type": "professional", "from_date": "2025-03-01", "thru_date": "2025-03-01",
        "paid_date": "2025-03-10", "paid_amount": "100.00",
    }  # fmt: skip
    return ClaimLine.model_validate({**base, **kw})


def test_denied_lines_never_count_and_a_row_delivered_twice_counts_once() -> None:
    admitted = admissible([line(1), line(1), line(2, denied=True), line(3)])
    assert list(admitted.lines) == [line(1).line_key, line(3).line_key] and admitted.denied == 1
    assert admitted.duplicates == 1 and admitted.conflicts == []
    assert admitted.positions == {line(1).line_key: 0, line(3).line_key: 3}


def test_a_different_row_under_a_key_already_taken_is_a_conflict_not_a_repeat() -> None:
    admitted = admissible([line(1), line(1, paid_amount="100.01"), line(1, claim_type="dme"), line(1, denied=True)])
    assert list(admitted.lines) == [line(1).line_key] and admitted.duplicates == 0 and admitted.denied == 1
    assert admitted.conflicts == [(1, "paid_amount"), (2, "claim_type")]
    # The same row under the member's newer id (CCLF9 re-keys members between deliveries) is a repeat.
    assert admissible([line(1), line(1, member_id="M2")]).duplicates == 1
    # A denied row takes no key: the same line paid after it is admitted.
    assert list(admissible([line(1, denied=True), line(1)]).positions.values()) == [1]


def test_signs_and_final_actions() -> None:
    assert line_spend(line(1, adjustment_type="cancellation")) == D("-100.00")
    assert line_spend(line(1, adjustment_type="cancellation", version_group="g")) == D(0)  # a final deletion
    assert line_spend(line(1, paid_amount="-5.00")) == D("-5.00")  # a reversal, as Tuva writes them


def test_every_version_but_the_greatest_loses_its_place_once() -> None:
    versions = [
        Version("a", "M1", "g", "2025-01-01|x", False),
        Version("b", "M1", "g", "2025-02-01|x", False),
        Version("c", "M1", "g", "2025-01-15|x", True),  # already superseded: not again
        Version("d", "M2", "g", "2025-01-01|x", False),  # another member's group
    ]
    assert losers(versions) == ["a"]


def test_spend_goes_to_the_payers_contracts_covering_the_date_and_counting_the_type() -> None:
    new = admissible([line(1), line(2, claim_type="pharmacy"), line(3, payer="OTHER"), line(4, member_id="M9")]).lines
    assignments = {
        "M1": [
            Assignment("MSSP", "CMS", YEAR, frozenset({"professional", "inpatient"})),
            Assignment("COMM", "CMS", YEAR, None),  # recorded before claim types were sent: every type
            Assignment("LATER", "CMS", (AttributionPeriod(start=date(2025, 6, 1), end=date(2025, 12, 31),
                                                          enrollment_type="esrd"),), None),
        ]
    }  # fmt: skip
    attributed, unattributed = attribute(new, set(), assignments)
    assert sorted((a.line_key.split("|")[1], a.contract_id) for a in attributed) == [
        ("C1", "COMM"), ("C1", "MSSP"), ("C2", "COMM")
    ]  # fmt: skip
    assert unattributed == 2  # the other payer's line, and the member nobody lists
    assert attribute(new, {line(1).line_key}, assignments)[0][0].line_key == line(2).line_key  # superseded: skipped


def _as_claims_ingest_counts(lines: list[ClaimLine]) -> D:
    """The spend claims_ingest keeps for lines arriving one by one: its store (by line key) and the superseded
    flags, moved by the same decisions its handler calls."""
    stored: dict[str, ClaimLine] = {}
    superseded: set[str] = set()
    for arriving in lines:
        new = {k: v for k, v in admissible([arriving]).lines.items() if k not in stored}
        stored.update(new)
        for v in new.values():
            if v.version_group:
                group = [
                    Version(k, s.member_id, s.version_group, s.version_rank, k in superseded)
                    for k, s in stored.items()
                    if (s.member_id, s.version_group) == (v.member_id, v.version_group)
                ]
                superseded.update(losers(group))
    return sum((line_spend(v) for k, v in stored.items() if k not in superseded), D(0))


LINES = st.builds(
    lambda n, member, group, day, kind, denied, amount: line(
        n, member_id=member, version_group=group, paid_date=f"2025-03-{day:02d}", adjustment_type=kind, denied=denied,
        paid_amount=str(amount),
    ),
    st.integers(1, 4), st.sampled_from(["M1", "M2"]), st.sampled_from([None, "g1", "g2"]), st.integers(10, 20),
    st.sampled_from(["original", "adjustment", "cancellation"]), st.booleans(), st.decimals(0, 500, places=2),
)  # fmt: skip


@given(st.lists(LINES, max_size=25))
def test_the_dry_run_ledger_counts_what_claims_ingest_counts(lines: list[ClaimLine]) -> None:
    ledger = Ledger()
    for v in lines:
        ledger.add(v)
    assert ledger.total == _as_claims_ingest_counts(lines)


def test_spend_batches_group_by_partition_and_named_correlation() -> None:
    from services.claims_ingest.domain.attribution import Correction
    from services.claims_ingest.handlers import _spend, spend_batches
    from shared.broker import partition_of

    info = {"claim_type": "professional", "service_date": date(2025, 3, 1), "paid_date": date(2025, 3, 9)}
    deltas = [_spend(f"C{n % 40}", "M1", Correction(f"L{n}", 1, "+", D(1), None), info, "aged_nondual") for n in range(400)]
    # Four hundred lines over forty contracts, two partitions: two messages, each of one partition's contracts.
    batches = spend_batches(deltas, 2, "load-1")
    assert len(batches) == 2
    for _, key, envelope in batches:
        assert {partition_of(d.contract_id, 2) for d in envelope.payload.deltas} == {partition_of(key, 2)}
        assert envelope.correlation_id == "load-1"
    assert sum(len(e.payload.deltas) for _, _, e in batches) == 400
    # Lines of two loads in one transaction: a batch per partition and load.
    named = {f"L{n}": "load-2" for n in range(200)}
    assert {e.correlation_id for _, _, e in spend_batches(deltas, 2, "load-1", named)} == {"load-1", "load-2"}
    assert len(spend_batches(deltas, 2, "load-1", named)) == 4
