"""Fuzzing (hypothesis, bounded budget): file parsers and the claim schema never crash on hostile input;
they answer with a claim line or a clear rejection."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from readers.base import IdChange, LoadOptions, MemberRecord, Rejected
from readers.cclf import CclfLoader, layout
from readers.fhir import FhirLoader
from readers.tuva import TuvaLoader
from shared.envelope import EventRejected, parse_event
from shared.events import CLAIM_SUBMITTED, ClaimLine

BUDGET = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
GOOD_PART_B = (Path(__file__).parents[1] / "fixtures" / "cclf" / "packet" / "P.A9999.ACO.ZC5Y12.D121101.T0100000").read_bytes()
WIDTH = max(f.end for f in layout("5").values())


def outcome_kinds(items: list[object]) -> set[type]:
    return {type(x) for x in items}


@BUDGET
@given(st.lists(st.binary(max_size=600), max_size=8))
def test_cclf_random_bytes_are_rejected_not_raised(tmp_path_factory: object, lines: list[bytes]) -> None:
    folder = Path(str(tmp_path_factory.mktemp("cclf")))  # type: ignore[attr-defined]
    path = folder / "P.A1.ACO.ZC5Y25.D250101.T0000000"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
    out = list(CclfLoader().read([path], LoadOptions()))
    assert outcome_kinds(out) <= {dict, Rejected}
    assert all(r.reasons and r.reasons[0].field for r in out if isinstance(r, Rejected))


@BUDGET
@given(st.integers(0, WIDTH - 1), st.binary(min_size=1, max_size=12))
def test_cclf_mutated_records_are_rejected_or_parsed(tmp_path_factory: object, at: int, junk: bytes) -> None:
    folder = Path(str(tmp_path_factory.mktemp("cclf")))  # type: ignore[attr-defined]
    record = GOOD_PART_B.split(b"\n")[3].replace(b"\r", b"")
    mutated = (record[:at] + junk + record[at + len(junk) :]).replace(b"\n", b" ")
    path = folder / "P.A1.ACO.ZC5Y25.D250101.T0000000"
    path.write_bytes(mutated + b"\n")
    out = list(CclfLoader().read([path], LoadOptions()))
    assert len(out) == 1 and isinstance(out[0], dict | Rejected)
    if isinstance(out[0], dict):
        try:
            ClaimLine.model_validate(out[0])
        except ValueError:
            pass  # the schema refuses it downstream, with reasons: also a clear answer


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
eob_like = st.fixed_dictionaries(
    {"resourceType": st.just("ExplanationOfBenefit")},
    optional={
        "id": json_values, "status": json_values, "patient": json_values, "billablePeriod": json_values,
        "payment": json_values, "item": json_values, "total": json_values, "type": json_values, "identifier": json_values,
    },
)  # fmt: skip


@BUDGET
@given(st.lists(eob_like, max_size=5))
def test_fhir_hostile_eobs_are_rejected_not_raised(tmp_path_factory: object, eobs: list[dict[str, object]]) -> None:
    folder = Path(str(tmp_path_factory.mktemp("fhir")))  # type: ignore[attr-defined]
    path = folder / "eob.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in eobs) + "\n")
    out = list(FhirLoader().read([path], LoadOptions()))
    assert outcome_kinds(out) <= {dict, Rejected, IdChange, MemberRecord}


@BUDGET
@given(st.lists(st.lists(st.text(max_size=15).map(lambda s: s.replace("\n", " ")), min_size=5, max_size=5), max_size=6))
def test_tuva_hostile_rows_are_rejected_not_raised(tmp_path_factory: object, rows: list[list[str]]) -> None:
    import csv

    folder = Path(str(tmp_path_factory.mktemp("tuva")))  # type: ignore[attr-defined]
    path = folder / "medical_claim.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["claim_id", "claim_type", "person_id", "claim_start_date", "paid_amount"])
        writer.writerows(rows)
    out = list(TuvaLoader().read([path], LoadOptions()))
    assert outcome_kinds(out) <= {dict, Rejected}


@BUDGET
@given(json_values)
def test_claim_schema_answers_any_json_with_an_envelope_or_reasons(value: object) -> None:
    raw = json.dumps(value).encode()
    try:
        parse_event(CLAIM_SUBMITTED, raw)
    except EventRejected as exc:
        assert exc.reasons and all(r.field and r.code for r in exc.reasons)


@BUDGET
@given(st.fixed_dictionaries({}, optional={
    "paid_amount": st.one_of(st.text(max_size=30), st.floats(), st.integers(), st.just("NaN"), st.just("1e400")),
    "from_date": st.text(max_size=12), "thru_date": st.text(max_size=12), "paid_date": st.text(max_size=12),
    "member_id": st.text(max_size=80), "claim_type": st.text(max_size=12), "line_number": st.integers(),
}))  # fmt: skip
def test_claim_fields_hostile_values_are_refused_with_the_field_named(overrides: dict[str, object]) -> None:
    payload = {
        "source": "fuzz", "claim_id": "C1", "line_number": 1, "member_id": "M1", "payer": "CMS", "claim_type": "professional",
        "from_date": "2025-01-02", "thru_date": "2025-01-02", "paid_date": "2025-01-20", "paid_amount": "10.00", **overrides,
    }  # fmt: skip
    envelope = {"event_id": "9a1f6f1e-2d1c-4a3b-8b7e-0c1d2e3f4a5b", "event_type": "claim_line.submitted",
                "schema_version": 1, "occurred_at": "2025-01-20T00:00:00Z", "producer": "fuzz", "payload": payload}  # fmt: skip
    try:
        parsed = parse_event(CLAIM_SUBMITTED, json.dumps(envelope).encode())
    except EventRejected as exc:
        assert all(r.field.startswith("payload") or r.field == "$" for r in exc.reasons)
        return
    amount = parsed.payload.paid_amount
    assert amount.is_finite() and abs(amount) <= 10_000_000
