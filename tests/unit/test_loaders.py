"""File loaders on real formats: the CCLF packet's worked examples, BCDA's CCLF zip, BFD's FHIR EOBs, Tuva CSV."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from acoflow.cli import main
from acoflow.load import LoadReport, account, items
from readers.base import IdChange, LoadError, LoadOptions, MemberRecord, Rejected, resolve_chains
from readers.registry import loader_for
from services.claims_ingest.domain.versions import Ledger
from shared.events import ClaimLine

FIXTURES = Path(__file__).parents[1] / "fixtures"
CCLF = FIXTURES / "cclf"
FHIR = FIXTURES / "fhir"
TUVA = FIXTURES / "tuva"
BCDA_ZIP = CCLF / "bcda_synthetic" / "T.BCD.A0001.ZCY18.D181120.T1000000.zip"


def files(folder: str, pattern: str = "*") -> list[Path]:
    return sorted((CCLF / folder).glob(pattern))


def report(paths: list[Path], fmt: str | None = None) -> LoadReport:
    out = LoadReport()
    for _, item in items(paths, fmt, LoadOptions(notes=out.notes)):
        account(out, item)
    return out


def read(paths: list[Path], fmt: str | None = None) -> list[Any]:
    return [item for _, item in items(paths, fmt, LoadOptions())]


def test_packet_part_a_example_totals_260() -> None:
    assert report(files("packet", "*ZC1*")).ledger.total == Decimal("260.00")


def test_packet_part_b_example_totals_707() -> None:
    assert report(files("packet", "*ZC5*")).ledger.total == Decimal("707.00")


def test_packet_both_parts_total_967_and_signs_cancellations() -> None:
    lines = [ClaimLine.model_validate(x) for x in read(files("packet")) if isinstance(x, dict)]
    assert len(lines) == 16
    cancelled = [x for x in lines if x.adjustment_type == "cancellation"]
    assert {x.signed_amount for x in cancelled} == {Decimal("-200.00"), Decimal("-380.00"), Decimal("-227.00"), Decimal(0)}
    assert report(files("packet")).ledger.total == Decimal("967.00")


def test_later_month_rekeys_dedupes_denies_and_takes_part_d_final_action() -> None:
    r = report(files("month2"))
    # claim 7 (50) + claim 8 (1234.56) + one allowed Part B line (45.10); Part D's final actions
    # (beneficiary payments 60 and 0) are not spend: CCLF7 carries no plan-paid amount.
    assert r.ledger.total == Decimal("1329.66")
    assert r.ledger.by_claim_type == {"inpatient": Decimal("1284.56"), "pharmacy": Decimal(0), "professional": Decimal("45.10")}
    part_d = [x for x in read(files("month2")) if isinstance(x, dict) and x["source"] == "cclf7"]
    assert {x["member_paid_amount"] for x in part_d} == {Decimal("50.00"), Decimal("60.00"), Decimal("30.00"), Decimal("0.00")}
    assert {x["paid_amount"] for x in part_d} == {Decimal(0)}
    assert (r.ledger.denied, r.ledger.superseded, r.id_changes) == (3, 2, 2)
    items_ = read(files("month2"))
    changes = {(x.previous_id, x.current_id) for x in items_ if isinstance(x, IdChange)}
    assert changes == {("6U50TE7GG18", "8ZZ9YY8XX76"), ("7AB1CD2EF34", "8ZZ9YY8XX76")}
    assert {x["member_id"] for x in items_ if isinstance(x, dict)} == {"8ZZ9YY8XX76"}


def test_two_months_together_count_the_redelivered_row_once() -> None:
    r = report(files("packet") + files("month2"))
    assert r.ledger.duplicates == 1
    assert r.ledger.total == Decimal("967.00") + Decimal("1329.66") - Decimal("50.00")


def test_bad_records_are_rejected_with_the_field_named() -> None:
    out = read(files("bad"))
    rejected = [x for x in out if isinstance(x, Rejected)]
    assert [x.line for x in rejected] == [2, 3, 4, 5]
    assert [(x.reasons[0].field, x.reasons[0].code) for x in rejected] == [
        ("CLM_LINE_CVRD_PD_AMT", "decimal_parsing"),
        ("CLM_EFCTV_DT", "date_parsing"),
        ("CLM_LINE_FROM_DT", "truncated"),
        ("$", "encoding"),
    ]
    assert all(x.original for x in rejected)
    assert report(files("bad")).ledger.total == Decimal("10.00")


def test_cclf0_count_mismatch_refuses_the_delivery() -> None:
    with pytest.raises(LoadError, match="CCLF0 says CCLF5 has 2"):
        read(files("miscount"))


def test_bcda_zip_counts_checked_xref_chain_resolved_and_members_read() -> None:
    r = LoadReport()
    out = [item for _, item in items([BCDA_ZIP], None, LoadOptions(notes=r.notes))]
    changes = {(x.previous_id, x.current_id) for x in out if isinstance(x, IdChange)}
    assert changes == {(f"1A69B98CD3{n}", "1A69B98CD35") for n in (2, 3, 4)}
    members = [x for x in out if isinstance(x, MemberRecord)]
    assert len(members) == 7
    assert {m.member_id for m in members} == {"1A69B98CD30", "1A69B98CD31", "1A69B98CD35"}
    assert {m.enrollment_type for m in members} == {"aged_nondual", "disabled"}
    assert any("not delivered" in n for n in r.notes)
    assert not any("not checked" in n for n in r.notes)


def test_resolve_chains_is_transitive_and_leaves_cycles_out() -> None:
    assert resolve_chains([("A", "B"), ("B", "C"), ("X", "Y"), ("P", "Q"), ("Q", "P")]) == {"A": "C", "B": "C", "X": "Y"}


EXPECTED_FHIR = {
    "eobReadCarrier.json": ("professional", "199.99"),
    "eobReadDme.json": ("dme", "777.75"),
    "eobReadHha.json": ("hha", "188.0"),
    "eobReadHospice.json": ("hospice", "130.32"),
    "eobReadOutpatient.json": ("outpatient", "693.11"),
    "eobReadPde.json": ("pharmacy", "126.99"),  # no payment.amount: the plan-paid adjudication
    "eobReadSnf.json": ("snf", "3333.33"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FHIR))
def test_fhir_eob_paid_amount_type_patient_and_period(name: str) -> None:
    [line] = read([FHIR / "bfd_r4_carin" / name])
    claim = ClaimLine.model_validate(line)
    assert (claim.claim_type, claim.paid_amount) == (EXPECTED_FHIR[name][0], Decimal(EXPECTED_FHIR[name][1]))
    assert claim.member_id == "567834"
    assert claim.from_date <= claim.thru_date <= claim.paid_date or claim.paid_date >= claim.from_date


def test_fhir_bundle_and_ndjson_give_the_same_lines(tmp_path: Path) -> None:
    bundle = FHIR / "bfd_r4_carin" / "eobByPatientIdAll.json"
    from_bundle = read([bundle])
    assert len(from_bundle) == 8
    # CMS's synthetic inpatient EOB pays 7,699.48 with 66,271.07 of IME, DSH and uncompensated care: refused.
    assert [x.reasons[0].code for x in from_bundle if isinstance(x, Rejected)] == ["less_than_exclusions"]
    ndjson = tmp_path / "ExplanationOfBenefit.ndjson"
    entries = json.loads(bundle.read_text())["entry"]
    ndjson.write_text("\n".join(json.dumps(e["resource"]) for e in entries) + "\n")
    assert [x for x in read([ndjson]) if isinstance(x, dict)] == [x for x in from_bundle if isinstance(x, dict)]
    assert report([bundle, ndjson]).ledger.total == sum(Decimal(v) for _, v in EXPECTED_FHIR.values())


def test_fhir_patient_mbis_rekey_and_preauthorizations_carry_no_spend() -> None:
    out = read(sorted((FHIR / "bfd_v3").glob("*.json")))
    assert IdChange("AAA1AA0AA11", "ABB2BB0BB22", None) in [
        IdChange(x.previous_id, x.current_id, None) for x in out if isinstance(x, IdChange)
    ]
    pharmacy = [x for x in out if isinstance(x, dict) and x["claim_type"] == "pharmacy"]
    assert [(x["member_id"], x["paid_amount"]) for x in pharmacy] == [("ABB2BB0BB22", Decimal("45.50"))]
    # The prior authorization is skipped, not refused. The institutional examples pay 3.50 with thousands of IME,
    # DSH and uncompensated care: an expenditure below zero is refused, with the reason.
    refused = {x.file: x.reasons[0] for x in out if isinstance(x, Rejected)}
    assert set(refused) == {f"ExplanationOfBenefit{k}.json" for k in ("", "-HHA", "-Hospice", "-Outpatient", "-SNF")}
    assert all(r.field == "payment.amount" and r.code == "less_than_exclusions" for r in refused.values())


@pytest.mark.parametrize(
    ("path", "payment", "excluded"),
    [
        # BFD R4 (CARIN): operating IME and DSH and uncompensated care as extensions; the capital IME and DSH
        # adjudications stay in.
        ("bfd_r4_carin/eobReadInpatient.json", "100000.00", "66271.07"),
        # BFD v3: the same as claim-level adjudication categories.
        ("bfd_v3/ExplanationOfBenefit.json", "50000.00", "12371.28"),
    ],
)
def test_fhir_part_a_expenditure_leaves_out_ime_dsh_and_uncompensated_care(
    path: str, payment: str, excluded: str, tmp_path: Path
) -> None:
    eob = json.loads((FHIR / path).read_text())
    eob["payment"]["amount"]["value"] = payment
    src = tmp_path / "eob.json"
    src.write_text(json.dumps(eob))
    [line] = [x for x in read([src]) if isinstance(x, dict)]
    claim = ClaimLine.model_validate(line)
    assert claim.gross_amount == Decimal(payment)
    assert claim.paid_amount == Decimal(payment) - Decimal(excluded)


def test_fhir_cancelled_eob_takes_the_spend_back(tmp_path: Path) -> None:
    eob = json.loads((FHIR / "bfd_r4_carin" / "eobReadCarrier.json").read_text())
    path = tmp_path / "eobs.ndjson"
    path.write_text(json.dumps(eob) + "\n" + json.dumps({**eob, "status": "cancelled"}) + "\n{broken\n")
    r = report([path])
    assert (r.lines, r.rejected, r.ledger.total) == (2, 1, Decimal(0))


def test_tuva_current_and_legacy_columns() -> None:
    out = read([TUVA / "medical_claim.csv", TUVA / "medical_claim_legacy.csv", TUVA / "pharmacy_claim.csv"])
    lines = [x for x in out if isinstance(x, dict)]
    rejected = [x for x in out if isinstance(x, Rejected)]
    assert [(x.fmt, x.reasons[0].field) for x in rejected] == [
        ("tuva:medical_claim", "claim_start_date"),
        ("tuva:medical_claim", "member_id"),
        ("tuva:pharmacy_claim", "paid_amount"),
    ]
    assert {x["member_id"] for x in lines} == {"M-100", "M-200", "M-300", "PAT-9"}
    assert {x["claim_type"] for x in lines} == {"professional", "inpatient", "outpatient", "pharmacy"}
    assert {x["payer"] for x in lines} == {"aetna", "humana"}
    total = report([TUVA / "medical_claim.csv", TUVA / "medical_claim_legacy.csv", TUVA / "pharmacy_claim.csv"]).ledger.total
    assert total == Decimal("120.50") + Decimal("30.125") + Decimal("8500.00") - Decimal("200.00") + Decimal("55.55") + Decimal(
        "42.17"
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (CCLF / "packet" / "P.A9999.ACO.ZC1Y12.D121101.T0100000", "cclf"),
        (BCDA_ZIP, "cclf"),
        (FHIR / "bfd_r4_carin" / "eobReadPde.json", "fhir"),
        (TUVA / "pharmacy_claim.csv", "tuva"),
    ],
)
def test_format_detection(path: Path, expected: str) -> None:
    assert loader_for(path, None).name == expected


def test_cclf_detected_by_content_without_its_name(tmp_path: Path) -> None:
    renamed = tmp_path / "part_b.txt"
    renamed.write_bytes((CCLF / "packet" / "P.A9999.ACO.ZC5Y12.D121101.T0100000").read_bytes())
    assert loader_for(renamed, None).name == "cclf"


def test_dry_run_json_prints_one_object() -> None:
    result = CliRunner().invoke(main, ["load", "--dry-run", "--json", *map(str, files("packet") + files("month2"))])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["lines"], summary["rejected"], summary["paid_total"]) == (26, 0, "2246.66")
    assert summary["by_claim_type"] == {"inpatient": "1494.56", "pharmacy": "0", "professional": "752.10"}
    assert sum(Decimal(v) for v in summary["by_claim_type"].values()) == Decimal(summary["paid_total"])


def test_dry_run_refuses_a_miscounted_delivery() -> None:
    result = CliRunner().invoke(main, ["load", "--dry-run", "--json", *map(str, files("miscount"))])
    assert result.exit_code == 2 and "CCLF0 says" in result.output


def test_roster_out_from_cclf8(tmp_path: Path) -> None:
    out = tmp_path / "roster.csv"
    result = CliRunner().invoke(main, ["load", "--dry-run", "--json", "--roster-out", str(out), str(BCDA_ZIP)])
    assert result.exit_code == 0, result.output
    rows = out.read_text().splitlines()
    assert rows[0] == "member_id,enrollment_type,start,end" and len(rows) == 4


def test_ledger_matches_claims_ingest_rules_for_versions() -> None:
    base: dict[str, Any] = {"source": "t", "line_number": 0, "member_id": "M", "payer": "P", "claim_type": "pharmacy",
                            "from_date": "2025-01-01", "thru_date": "2025-01-01", "version_group": "g"}  # fmt: skip
    ledger = Ledger()
    ledger.add(ClaimLine.model_validate({**base, "claim_id": "2", "paid_date": "2025-01-09", "paid_amount": "7"}))
    ledger.add(ClaimLine.model_validate({**base, "claim_id": "1", "paid_date": "2025-01-02", "paid_amount": "5"}))
    assert ledger.total == Decimal(7)  # an older version arriving late changes nothing


def test_fhir_amounts_with_binary_float_noise_read_as_the_decimal_they_denote() -> None:
    from readers.base import FieldError
    from readers.fhir import denoted

    assert denoted(Decimal("112.41600000000001"), "v") == Decimal("112.416000")
    assert denoted(Decimal("0.30000000000000004"), "v") == Decimal("0.3")
    assert denoted(Decimal("99.99999999999999"), "v") == Decimal("100")  # noise below a whole number
    assert denoted(Decimal("12.345"), "v") == Decimal("12.345")
    for meant_more in ("112.4160001", "0.0000005", "1E+40"):
        with pytest.raises(FieldError) as refused:
            denoted(Decimal(meant_more), "payment.amount.value")
        assert refused.value.reason.field == "payment.amount.value"
