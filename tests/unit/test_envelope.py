"""The event envelope's encoding: computed once per envelope, and never carried over to a changed copy; and
parsing's refusal of a claim line paid too far ahead."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.envelope import LONG_NUMBER, Envelope, EventRejected, has_long_number, new_envelope, parse_event
from shared.events import (
    CLAIM_SUBMITTED,
    POSITION_FIGURES,
    POSITION_UPDATED,
    QUALITY_RECORDED,
    PositionFigures,
    QualityResult,
    SettlementPosition,
)


def _envelope() -> Envelope[QualityResult]:
    payload = QualityResult(
        contract_id="C1", performance_year=2025, version=1, quality_score=Decimal("0.9"), quality_standard="met"
    )
    return new_envelope(QUALITY_RECORDED, payload, "test")


def test_bytes_are_the_envelope_json_and_parse_back() -> None:
    env = _envelope()
    raw = env.to_bytes()
    assert raw is env.to_bytes()
    assert json.loads(raw) == json.loads(env.model_dump_json())
    assert parse_event(QUALITY_RECORDED, raw) == env


def test_a_copy_with_changes_encodes_its_own_fields() -> None:
    env = _envelope()
    env.to_bytes()
    other = uuid.uuid4()
    copy = env.model_copy(update={"event_id": other})
    assert json.loads(copy.to_bytes())["event_id"] == str(other)
    assert json.loads(env.to_bytes())["event_id"] == str(env.event_id)


def _line(paid: date) -> bytes:
    payload = {
        "source": "t", "claim_id": "C1", "line_number": 1, "member_id": "M1", "payer": "CMS", "claim_type": "professional",
        "from_date": "2025-01-02", "thru_date": "2025-01-02", "paid_date": paid.isoformat(), "paid_amount": "10.00",
    }  # fmt: skip
    return json.dumps({
        "event_id": str(uuid.uuid4()), "event_type": CLAIM_SUBMITTED.event_type, "schema_version": 1,
        "occurred_at": "2025-01-03T00:00:00+00:00", "producer": "t", "payload": payload,
    }).encode()  # fmt: skip


def test_a_line_paid_more_than_a_year_ahead_is_refused() -> None:
    # The limit is worked out once a minute, not per line: it must still be a year and a day from today.
    assert parse_event(CLAIM_SUBMITTED, _line(date.today() + timedelta(days=366))).payload.member_id == "M1"
    with pytest.raises(EventRejected) as refused:
        parse_event(CLAIM_SUBMITTED, _line(date.today() + timedelta(days=367)))
    assert [r.message for r in refused.value.reasons] == ["Value error, paid_date: more than a year in the future"]


def test_json_numbers_are_read_as_written_never_through_float() -> None:
    line = (
        b'{"event_id":"7b1c3f1e-8f0e-4b8a-9a52-3c1f4e2a7d90","event_type":"claim_line.submitted","schema_version":1,'
        b'"occurred_at":"2025-06-01T00:00:00+00:00","producer":"x","payload":{"source":"s","claim_id":"C1",'
        b'"line_number":1,"member_id":"M1","payer":"CMS","claim_type":"professional","from_date":"2025-01-01",'
        b'"thru_date":"2025-01-01","paid_date":"2025-01-05","paid_amount":AMOUNT}}'
    )
    # 16 significant digits: a float would give 9999999.123456789 back as 9999999.12345679.
    assert parse_event(CLAIM_SUBMITTED, line.replace(b"AMOUNT", b"1234567.123456")).payload.paid_amount == Decimal(
        "1234567.123456"
    )
    with pytest.raises(EventRejected) as refused:
        parse_event(CLAIM_SUBMITTED, line.replace(b"AMOUNT", b"9999999.123456789"))
    assert refused.value.reasons[0].field == "payload.paid_amount"  # too many places: refused, not rounded


# Values of 14 to 18 number characters (the limit is 16), after a separator or not, ended by another byte.
_VALUE = st.tuples(
    st.sampled_from([b":", b",", b"[", b": -", b'"', b"x"]),
    st.sampled_from("0123456789"),
    st.text(alphabet="0123456789.eE+-", min_size=13, max_size=17),
    st.sampled_from([b",", b"}", b'"', b"x"]),
).map(lambda t: t[0] + (t[1] + t[2]).encode() + t[3])
_JSONISH = st.binary() | st.lists(_VALUE, max_size=4).map(b"".join)


@given(_JSONISH)
def test_the_quick_long_number_check_decides_as_the_regex_does(raw: bytes) -> None:
    assert has_long_number(raw) == (LONG_NUMBER.search(raw) is not None)


def test_a_position_read_for_its_figures_is_the_position_less_the_rest() -> None:
    zero = Decimal(0)
    position = SettlementPosition(
        contract_id="C1", contract_version=3, sequence=9, program="MSSP", track="BE", performance_year=2025,
        as_of=date(2025, 6, 30), members=100, member_months_to_date=600, member_months_total=1200, lines_applied=250,
        benchmark_to_date=Decimal("600000.00"), benchmark_total=Decimal("1200000.00"), paid_to_date=Decimal("5.25"),
        paid_by_service_month={"2025-05": Decimal("2.000001"), "2025-06": Decimal("3.249999")},
        incurred_to_date=zero, projected_expenditure=zero, projected_gross_savings=zero,
        projected_savings_rate=Decimal("-0.0125"), msr=Decimal("0.02"), mlr=Decimal("0.02"), gate="losses",
        quality_score=Decimal(1), final_sharing_rate=Decimal("0.5"), projected_shared_savings_losses=Decimal("-15000.5"),
        downside_exposure_now=Decimal("15000.5"), downside_exposure_at_cap=Decimal("60000"), probability_clears_msr=zero,
        probability_crosses_mlr=Decimal("0.4"), parameters_version="t", explanation=("step one", "step two"),
    )  # fmt: skip
    raw = new_envelope(POSITION_UPDATED, position, "test").to_bytes()
    figures = parse_event(POSITION_FIGURES, raw).payload
    assert figures.model_dump() == {name: getattr(position, name) for name in PositionFigures.model_fields}
    # The view declares each field as the event does, so it refuses what the event would refuse.
    for name, field in PositionFigures.model_fields.items():
        full = SettlementPosition.model_fields[name]
        assert (field.annotation, field.metadata, field.default) == (full.annotation, full.metadata, full.default), name
    with pytest.raises(EventRejected) as refused:
        parse_event(POSITION_FIGURES, raw.replace(b'"msr":"0.0200000000"', b'"msr":"two percent"'))
    assert [r.field for r in refused.value.reasons] == ["payload.msr"]
