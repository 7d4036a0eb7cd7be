"""CCLF fields read by their pictures (CCLF Information Packet v38, Appendix B; ../shared/data/cclf/layouts.csv):
amounts of any width, filled with zeros or blanks, signed in the first position or not, blanks; dates and codes as
payers write them; CCLF0 counts. The property test writes records of every CCLF file with random valid values in
every field, each convention a payer may use, and checks each loads as what was written."""

from __future__ import annotations

import csv
import string
import tempfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from readers.base import FieldError, IdChange, LoadOptions, MemberRecord, Rejected
from readers.cclf import (
    CARRIER_PAID,
    CclfLoader,
    Picture,
    amount_of,
    code_of,
    date_of,
    digits_of,
    layout,
    picture_of,
)
from shared.events import ClaimLine

LAYOUTS = Path(__file__).parents[2] / "readers" / "cclf_layouts.csv"
FILES = sorted({row["cclf_file"][4:] for row in csv.DictReader(LAYOUTS.open(encoding="utf-8"))} - {"0"})
IME = picture_of("-9(18).99", 22, "CLM_OPRTNL_IME_AMT")
PAID = picture_of("-9(13).99", 17, "CLM_PMT_AMT")


def test_the_payers_zero_padded_amount_reads_as_cms_writes_it() -> None:
    assert amount_of("CLM_OPRTNL_IME_AMT", "0000000000000000534.83", IME) == Decimal("534.83")  # zeros in the sign's place
    assert amount_of("CLM_OPRTNL_IME_AMT", "-000000000000000534.83", IME) == Decimal("-534.83")
    assert amount_of("CLM_OPRTNL_IME_AMT", "-              534.83", IME) == Decimal("-534.83")  # sign first, blanks
    assert amount_of("CLM_PMT_AMT", "534.83", PAID) == Decimal("534.83")
    assert amount_of("CLM_PMT_AMT", "534", PAID) == Decimal("534.00")
    assert amount_of("CLM_PMT_AMT", "+.5", PAID) == Decimal("0.50")
    assert amount_of("CLM_PMT_AMT", "", PAID) is None


@pytest.mark.parametrize(
    ("value", "why"),
    [("1234.567", "three decimals"), ("12345678901234.00", "14 integer digits"), ("12,345.00", "a separator"),
     ("534.83-", "a trailing sign"), ("-", "no digits"), ("5 34.83", "a blank inside"), ("١٢.00", "non-ASCII digits"),
     ("1e3", "an exponent")],
)  # fmt: skip
def test_an_amount_out_of_its_picture_is_refused_naming_field_and_picture(value: str, why: str) -> None:
    with pytest.raises(FieldError) as caught:
        amount_of("CLM_PMT_AMT", value, PAID)
    assert caught.value.reason.field == "CLM_PMT_AMT" and "-9(13).99" in caught.value.reason.message, why
    assert len(value) < 2 or value not in caught.value.reason.message  # a reason never repeats the value


def test_an_unsigned_picture_refuses_a_sign_and_codes_read_as_their_lists_write_them() -> None:
    with pytest.raises(FieldError):
        amount_of("X", "-1.00", picture_of("9(5).99", 8, "X"))
    assert picture_of("X(15)", 15, "CLM_LINE_CVRD_PD_AMT") == Picture("X(15)", 15, "amount", 15, 2, True)
    assert [code_of(v) for v in ("00", "01", "2", "A", "")] == ["0", "1", "2", "A", ""]
    assert code_of("2", 2) == "02" and code_of("NA", 2) == "NA"
    claim_id = layout("1")["CUR_CLM_UNIQ_ID"].picture
    assert digits_of("CUR_CLM_UNIQ_ID", "1234", claim_id) == digits_of("CUR_CLM_UNIQ_ID", "0000000001234", claim_id)
    with pytest.raises(FieldError):
        digits_of("CUR_CLM_UNIQ_ID", "12A4", claim_id)
    assert date_of("CLM_FROM_DT", "0000-00-00") is None and date_of("CLM_FROM_DT", "9999-12-31") is None
    with pytest.raises(FieldError):
        date_of("CLM_FROM_DT", "20250301")


# The random record: every field by its picture, the fields a parser reads with values of their code lists.
MBI = st.text(string.ascii_uppercase + string.digits, min_size=11, max_size=11)
TEXT = string.ascii_letters + string.digits + " -.,/"
CODES: dict[str, Any] = {
    "CLM_ADJSMT_TYPE_CD": st.sampled_from(["0", "1", "2", "00", "01", "02", ""]),
    "CLM_CARR_PMT_DNL_CD": st.sampled_from([*sorted(CARRIER_PAID), "01", "0", "00", "C", ""]),
    "CLM_PRCSG_IND_CD": st.sampled_from(["A", "R", "S", "D", "I", ""]),
    "CLM_MDCR_NPMT_RSN_CD": st.sampled_from(["", "", "", "A", "N"]),
    "HICN_MBI_XREF_IND": st.sampled_from(["M", "H"]),
    "BENE_MDCR_STUS_CD": st.sampled_from(["10", "11", "20", "21", "31", ""]),
    "BENE_DUAL_STUS_CD": st.sampled_from(["00", "02", "2", "04", "NA", ""]),
}
TYPES = {"1": ["10", "20", "30", "40", "50", "60", "61"], "5": ["71", "72"], "6": ["81", "82"]}
CLAIM_DATES = {"CLM_FROM_DT", "CLM_THRU_DT", "CLM_LINE_FROM_DT", "CLM_LINE_THRU_DT", "CLM_EFCTV_DT", "CLM_IDR_LD_DT"}
# Amounts a parser counts stay within what a claim line may carry (shared/events.py: MAX_LINE_AMOUNT).
COUNTED = {"CLM_PMT_AMT": 9_999_999, "CLM_LINE_CVRD_PD_AMT": 9_999_999, "CLM_LINE_BENE_PMT_AMT": 9_999_999}
EXCLUDED = ("CLM_OPRTNL_IME_AMT", "CLM_OPRTNL_DSPRPRTNT_AMT", "CLM_HIPPS_UNCOMPD_CARE_AMT")


@st.composite
def amount_text(draw: st.DrawFn, picture: Picture, limit: int | None = None) -> tuple[Decimal, str]:
    """An amount within the picture, written as one of the ways a payer fills the field."""
    top = 10 ** min(picture.integer_digits, 12) - 1 if limit is None else limit
    cents = draw(st.integers(-top * 100 if picture.signed else 0, top * 100))
    value = Decimal(cents).scaleb(-2)
    digits = f"{abs(value):.2f}"
    sign = "-" if value < 0 else ""
    width = picture.width
    style = draw(st.sampled_from(["blanks", "zeros", "zeros_after_sign", "sign_first", "left", "short"]))
    if style == "zeros" and sign:
        style = "zeros_after_sign"
    text = {
        "blanks": (sign + digits).rjust(width),
        "zeros": digits.rjust(width, "0"),  # the sign's position filled with a zero too
        "zeros_after_sign": (sign or " ") + digits.rjust(width - 1, "0"),
        "sign_first": (sign or " ") + digits.rjust(width - 1),
        "left": (sign + digits).ljust(width),
        "short": (sign + digits.rstrip("0").rstrip(".") if "." in digits else sign + digits).rjust(width),
    }[style]
    return value, text


@st.composite
def records(draw: st.DrawFn, file_no: str) -> tuple[str, dict[str, Any]]:
    """(the fixed-width record, what a reader should find in it)."""
    fields = layout(file_no)
    chars = [" "] * max(f.end for f in fields.values())
    expect: dict[str, Any] = {}
    start = draw(st.dates(date(2015, 1, 1), date(2025, 6, 30)))
    dates = {"CLM_FROM_DT": start, "CLM_LINE_FROM_DT": start}
    dates["CLM_THRU_DT"] = dates["CLM_LINE_THRU_DT"] = start + timedelta(days=draw(st.integers(0, 30)))
    dates["CLM_EFCTV_DT"] = dates["CLM_THRU_DT"] + timedelta(days=draw(st.integers(0, 90)))
    dates["CLM_IDR_LD_DT"] = dates["CLM_EFCTV_DT"] + timedelta(days=draw(st.integers(0, 30)))
    for label, f in fields.items():
        p = f.picture
        if label in CODES:
            text = draw(CODES[label])
        elif label == "CLM_TYPE_CD" and file_no in TYPES:
            text = draw(st.sampled_from(TYPES[file_no]))
        elif label in ("BENE_MBI_ID", "PRVS_NUM", "CRNT_NUM"):
            text = draw(MBI)
        elif label == "CLM_LINE_NUM":
            number = draw(st.integers(1, 9999))
            text = draw(st.sampled_from([f"{number:010d}", str(number), str(number).rjust(10)]))
        elif p.kind == "date":
            day = dates.get(label) or draw(st.dates(date(1920, 1, 1), date(2030, 12, 31)))
            text = day.isoformat() if label in dates else draw(st.sampled_from([day.isoformat(), "", "9999-12-31", "0000-00-00"]))
        elif p.kind == "amount":
            limit = COUNTED.get(label) or (99_999 if label in EXCLUDED else None)
            value, text = draw(amount_text(p, limit))
        elif p.kind == "digits":
            number = draw(st.integers(0, 10 ** min(p.integer_digits, 15) - 1))
            text = draw(st.sampled_from([str(number).zfill(p.integer_digits), str(number), str(number).rjust(p.width)]))
        else:
            text = draw(st.text(TEXT, max_size=p.width))
        text = text[: f.end - f.start]
        chars[f.start : f.start + len(text)] = text
        expect[label] = value if p.kind == "amount" else text.strip()
    return "".join(chars), expect


def cclf0(counts: dict[str, int], style: str) -> str:
    rows = ["File Number  |File Description    |Total Records Count |Record Length"]
    for number, count in counts.items():
        written = {"blanks": f"{count:>11}", "zeros": f"{count:011d}", "separators": f"{count:>11,}"}[style]
        length = max(f.end for f in layout(number).values())
        rows.append(f"CCLF{number:<3}|some file                                 |{written}|{length:>5}")
    return "\n".join(rows) + "\n"


def expected_paid(file_no: str, e: dict[str, Any]) -> Decimal:
    if file_no == "1":
        excluded = sum((abs(e[x]) for x in EXCLUDED), Decimal(0))
        gross: Decimal = e["CLM_PMT_AMT"]
        return gross - excluded if gross >= 0 else gross + excluded
    return Decimal(0) if file_no == "7" else e["CLM_LINE_CVRD_PD_AMT"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), style=st.sampled_from(["blanks", "zeros", "separators"]))
def test_records_of_every_file_with_valid_values_in_every_field_load(tmp_path: Path, data: st.DataObject, style: str) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    written: dict[str, list[dict[str, Any]]] = {}
    for number in FILES:
        drawn = data.draw(st.lists(records(number), min_size=1, max_size=3), label=f"CCLF{number}")
        # A Part A claim's add-ons are parts of its payment: never more than it.
        drawn = [(r, e) for r, e in drawn if number != "1" or sum(abs(e[x]) for x in EXCLUDED) <= abs(e["CLM_PMT_AMT"])]
        (folder / f"P.A9999.ACO.ZC{number}Y25.D250601.T0100000").write_text("".join(r + "\r\n" for r, _ in drawn) + "\n")
        written[number] = [e for _, e in drawn]
    (folder / "P.A9999.ACO.ZC0Y25.D250601.T0100000").write_text(cclf0({n: len(v) for n, v in written.items()}, style))
    notes: list[str] = []
    out = list(CclfLoader().read(sorted(folder.iterdir()), LoadOptions(notes=notes)))
    assert not [x for x in out if isinstance(x, Rejected)], [x.reasons for x in out if isinstance(x, Rejected)]
    assert not any("not checked" in n for n in notes)
    for number, source in (("1", "cclf1"), ("5", "cclf5"), ("6", "cclf6"), ("7", "cclf7")):
        lines = [x for x in out if isinstance(x, dict) and x["source"] == source]
        assert len(lines) == len(written[number])
        for line, e in zip(lines, written[number], strict=True):
            claim = ClaimLine.model_validate(line)
            assert claim.paid_amount == expected_paid(number, e)
            assert claim.claim_id == e["CUR_CLM_UNIQ_ID"].zfill(13)
            assert claim.adjustment_type == ["original", "cancellation", "adjustment"][int(e["CLM_ADJSMT_TYPE_CD"] or 0)]
            if number in ("5", "6"):
                assert claim.line_number == int(e["CLM_LINE_NUM"])
    assert len([x for x in out if isinstance(x, MemberRecord)]) == len(written["8"])
    xrefs = [e for e in written["9"] if e["HICN_MBI_XREF_IND"] == "M" and e["PRVS_NUM"] != e["CRNT_NUM"]]
    assert len([x for x in out if isinstance(x, IdChange)]) <= len(xrefs)  # chains and cycles resolve to fewer
    for number in ("2", "3", "4", "A", "B"):
        assert any(f"CCLF{number} carries no spend" in n for n in notes)
