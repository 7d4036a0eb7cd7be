"""CMS Claim and Claim Line Feed (CCLF) files: fixed-width, single files or the monthly zip.

Layouts come from CMS's published layouts (cclf_layouts.csv, a copy of ../shared/data/cclf/layouts.csv);
the rules from the CCLF Information Packet v38: sign by CLM_ADJSMT_TYPE_CD (section 5.3), denied claims
and lines (section 3.2), Part D final action (section 3.3), MBI cross-reference (sections 3.1, 5.1.1),
Part A spend from the header file only (section 3.5: revenue-center amounts would count it twice)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache, lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from readers.base import FieldError, IdChange, Item, LoadError, LoadOptions, MemberRecord, Rejected, resolve_chains
from shared.envelope import Reason
from shared.expenditure import ExclusionsExceedPayment, part_a_spend

LAYOUTS = Path(__file__).with_name("cclf_layouts.csv")
NAME = re.compile(r"ZC([0-9AB])[YR]\d\d|CCLF([0-9AB])(?![0-9A-Z])", re.IGNORECASE)
DATE = re.compile(rb"\d{4}-\d{2}-\d{2}")
DELIVERY = re.compile(r"\.D\d{6}\.")
CLAIM_TYPES = {
    "10": "hha", "20": "snf", "30": "snf", "40": "outpatient", "50": "hospice", "60": "inpatient", "61": "inpatient",
    "71": "professional", "72": "professional", "81": "dme", "82": "dme",
}  # fmt: skip
ADJUSTMENT = {"0": "original", "1": "cancellation", "2": "adjustment"}
# CLM_CARR_PMT_DNL_CD: 1-9, A and B say whom the carrier paid; 0 is a denial and the letters beyond are
# MSP cost-avoided codes (nothing paid). CLM_PRCSG_IND_CD: A allowed, R reprocessed, S secondary payer.
CARRIER_PAID = frozenset("123456789AB")
LINE_ALLOWED = frozenset({"A", "R", "S"})
CLAIM_FILES = ("1", "5", "6", "7")


PictureKind = Literal["text", "digits", "amount", "date"]
AMOUNT_PICTURE = re.compile(r"(-?)9\((\d+)\)\.(9+)")
DIGITS_PICTURE = re.compile(r"9\((\d+)\)")


@dataclass(frozen=True)
class Picture:
    """A field's format as CMS's layouts write it: X(n) text, 9(n) digits, -9(n).99 an amount (the sign in the
    first position, a blank there otherwise: packet Appendix B), YYYY-MM-DD a date. CCLF5's amounts are X(n):
    text holding an amount, read as a signed amount with cents that fills at most the field."""

    text: str
    width: int
    kind: PictureKind
    integer_digits: int = 0
    decimals: int = 0
    signed: bool = False


def picture_of(fmt: str, width: int, label: str) -> Picture:
    fmt = fmt.strip()
    if amount := AMOUNT_PICTURE.fullmatch(fmt):
        return Picture(fmt, width, "amount", int(amount[2]), len(amount[3]), amount[1] == "-")
    if digits := DIGITS_PICTURE.fullmatch(fmt):
        return Picture(fmt, width, "digits", int(digits[1]))
    if fmt.upper() == "YYYY-MM-DD":
        return Picture(fmt, width, "date")
    if label.endswith("_AMT"):
        return Picture(fmt, width, "amount", width, 2, True)
    return Picture(fmt, width, "text")


@dataclass(frozen=True)
class Field:
    label: str
    start: int
    end: int
    picture: Picture


@cache
def layout(file_no: str) -> dict[str, Field]:
    """Field label -> 0-based slice bounds and picture for CCLF file `file_no` ("1".."9", "A", "B")."""
    out: dict[str, Field] = {}
    with LAYOUTS.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["cclf_file"] == f"CCLF{file_no}":
                label = re.sub(r"[^A-Z0-9_].*$", "", row["field_label"].strip())
                width = int(row["length"])
                out[label] = Field(label, int(row["start"]) - 1, int(row["end"]), picture_of(row["format"], width, label))
    return out


def format_record(file_no: str, **values: str) -> str:
    """The inverse of parsing: a fixed-width record with the given fields (fixtures, benchmarks, demo feeds).
    Amounts are right-aligned, everything else left-aligned, as CMS writes them."""
    fields = layout(file_no)
    chars = [" "] * max(f.end for f in fields.values())
    for label, value in values.items():
        f = fields[label]
        width = f.end - f.start
        if len(value) > width:
            raise ValueError(f"{label}: {value!r} is wider than {width}")
        chars[f.start : f.end] = value.rjust(width) if label.endswith("_AMT") else value.ljust(width)
    return "".join(chars)


def file_number(name: str) -> str | None:
    match = NAME.search(name)
    return (match.group(1) or match.group(2)).upper() if match else None


@cache
def spans(file_no: str) -> dict[str, tuple[int, int]]:
    """layout() as plain (start, end) pairs: what Record slices by, thousands of times a second."""
    return {label: (f.start, f.end) for label, f in layout(file_no).items()}


# Blanks, CMS's placeholder dates, and the zero-filled date of a delivery that pads every field with zeros.
NO_DATE = frozenset({"", "1000-01-01", "0001-01-01", "9999-12-31", "0000-00-00"})


@lru_cache(maxsize=8192)
def _date_value(value: str) -> date | None:
    """A CCLF date field's text as a date (None for blanks and placeholder dates); ValueError if it is none. A
    file holds a few hundred distinct dates across millions of records, so each is parsed once."""
    if value in NO_DATE:
        return None
    if len(value) != 10 or value[4] != "-" or value[7] != "-":
        raise ValueError(value)
    return date.fromisoformat(value)


def date_of(label: str, value: str) -> date | None:
    try:
        return _date_value(value)
    except ValueError:
        # The value is not repeated: a date of service is PHI, and reasons are read by viewers.
        raise FieldError(label, "date_parsing", f"{label} is not a date of picture YYYY-MM-DD") from None


def required_of(label: str, value: str) -> str:
    if not value:
        raise FieldError(label, "missing", f"{label} is blank")
    return value


AMOUNT_TEXT = re.compile(r"([-+]?) *(\d*)(?:\.(\d*))?", re.ASCII)


def amount_of(label: str, value: str, picture: Picture) -> Decimal | None:
    """An amount by its field's picture (None when blank): right-aligned with blanks or zeros, zeros filling the
    sign's position too when there is no sign, the sign first or just before the digits. Refused when it has more
    integer digits or decimals than the picture, a sign the picture has none of, or anything but digits."""
    if not value:
        return None
    match = AMOUNT_TEXT.fullmatch(value)
    if (
        match is None
        or not (match[2] or match[3])
        or (match[1] == "-" and not picture.signed)
        or len(match[2].lstrip("0")) > picture.integer_digits
        or len(match[3] or "") > picture.decimals
    ):
        raise FieldError(
            label,
            "decimal_parsing",
            f"{label} is not an amount of picture {picture.text} (an optional sign, at most {picture.integer_digits}"
            f" digits, a point and at most {picture.decimals} decimals)",
        )
    return Decimal(f"{match[1]}{match[2] or '0'}.{(match[3] or '').ljust(picture.decimals, '0')}")


def required_amount(label: str, value: str, picture: Picture) -> Decimal:
    amount = amount_of(label, value, picture)
    if amount is None:
        raise FieldError(label, "missing", f"{label} is blank")
    return amount


def digits_of(label: str, value: str, picture: Picture) -> str:
    """A 9(n) identifier as CMS writes it, zero-filled to n digits, whether the payer filled it with zeros, blanks
    or nothing: the same claim in two deliveries has one identity."""
    if not value.isascii() or not value.isdigit() or len(value) > picture.integer_digits:
        raise FieldError(label, "int_parsing", f"{label} is not a number of picture {picture.text}")
    return value.zfill(picture.integer_digits)


def code_of(value: str, width: int = 1) -> str:
    """A numeric code in a text field (X(02)) as the code lists write it: "01" and "1 " are the code 1 of a
    one-character list, "2" the code 02 of a two-character one."""
    return value.lstrip("0").zfill(width) if value.isascii() and value.isdigit() else value


class Record:
    """Typed access to one fixed-width record; every failure names the CCLF field."""

    __slots__ = ("file_no", "length", "text")

    def __init__(self, text: str, file_no: str) -> None:
        self.text = text
        self.file_no = file_no
        self.length = len(text)

    def text_of(self, label: str) -> str:
        start, end = spans(self.file_no)[label]
        if self.length <= start:
            raise FieldError(label, "truncated", f"record ends at {self.length}, before {label} ({start + 1}-{end})")
        return self.text[start:end].strip()

    def required(self, label: str) -> str:
        return required_of(label, self.text_of(label))

    def date(self, label: str) -> date | None:
        return date_of(label, self.text_of(label))


class Cutter:
    """Cuts a claim parser's fields out of a record with one itemgetter of slices and one map of strip:
    2.1 µs for a CCLF5 record's 12 fields against 3.6 µs slicing them one by one (timeit, this session's VM)."""

    def __init__(self, file_no: str, labels: tuple[str, ...]) -> None:
        bounds = spans(file_no)
        self.file_no = file_no
        self.labels = labels
        self.getter = itemgetter(*(slice(*bounds[label]) for label in labels))
        self.last_start = max(bounds[label][0] for label in labels)

    def __call__(self, text: str) -> dict[str, str]:
        """Each field's stripped text; a record too short for them is refused on the first of the labels
        that starts past its end."""
        if len(text) <= self.last_start:
            record = Record(text, self.file_no)
            return {label: record.text_of(label) for label in self.labels}
        return dict(zip(self.labels, map(str.strip, self.getter(text)), strict=True))


Parser = Callable[[dict[str, str], str], dict[str, Any]]
DATES = ("CLM_EFCTV_DT", "CLM_IDR_LD_DT")


def _dates(v: dict[str, str], from_label: str, thru_label: str | None) -> tuple[date, date, date | None, date]:
    start = date_of(from_label, v[from_label])
    if start is None:
        raise FieldError(from_label, "missing", f"{from_label} is blank")
    thru = (date_of(thru_label, v[thru_label]) if thru_label else None) or start
    effective = date_of("CLM_EFCTV_DT", v["CLM_EFCTV_DT"])
    paid = date_of("CLM_IDR_LD_DT", v["CLM_IDR_LD_DT"]) or effective or thru
    return start, thru, effective, paid


def _adjustment(v: dict[str, str]) -> str:
    code = code_of(v["CLM_ADJSMT_TYPE_CD"]) or "0"
    if code not in ADJUSTMENT:
        raise FieldError("CLM_ADJSMT_TYPE_CD", "enum", "CLM_ADJSMT_TYPE_CD is not 0, 1 or 2")
    return ADJUSTMENT[code]


# Each parser's fields, in the order a short record is refused on: the dates first, as they are checked first.
# CCLF1's fields for what a Part A claim's expenditure leaves out (shared/expenditure.py): the operating IME and
# DSH payments and the uncompensated-care payment; the capital IME and DSH fields count.
PART_A_EXCLUDED = ("CLM_OPRTNL_IME_AMT", "CLM_OPRTNL_DSPRPRTNT_AMT", "CLM_HIPPS_UNCOMPD_CARE_AMT")
PART_A = ("CLM_FROM_DT", "CLM_THRU_DT", *DATES, "CUR_CLM_UNIQ_ID", "BENE_MBI_ID", "CLM_TYPE_CD", "CLM_ADJSMT_TYPE_CD",
          "CLM_PMT_AMT", "CLM_MDCR_NPMT_RSN_CD", *PART_A_EXCLUDED)  # fmt: skip
PART_B = ("CLM_LINE_FROM_DT", "CLM_LINE_THRU_DT", *DATES, "CLM_LINE_NUM", "CLM_CARR_PMT_DNL_CD", "CLM_PRCSG_IND_CD",
          "CUR_CLM_UNIQ_ID", "BENE_MBI_ID", "CLM_TYPE_CD", "CLM_ADJSMT_TYPE_CD", "CLM_LINE_CVRD_PD_AMT")  # fmt: skip
# Part D's natural key: the latest row of a key replaces the earlier ones (packet 3.3, 5.1.2).
PART_D_KEY = ("CLM_LINE_FROM_DT", "PRVDR_SRVC_ID_QLFYR_CD", "CLM_SRVC_PRVDR_GNRC_ID_NUM", "CLM_DSPNSNG_STUS_CD",
              "CLM_LINE_RX_SRVC_RFRNC_NUM", "CLM_LINE_RX_FILL_NUM")  # fmt: skip
PART_D = ("CLM_LINE_FROM_DT", *DATES, *PART_D_KEY[1:], "CUR_CLM_UNIQ_ID", "BENE_MBI_ID", "CLM_ADJSMT_TYPE_CD",
          "CLM_LINE_BENE_PMT_AMT")  # fmt: skip


ZERO = Decimal(0)
PICTURES_1 = {label: f.picture for label, f in layout("1").items()}


def part_a_amounts(v: dict[str, str]) -> tuple[Decimal, Decimal]:
    """(expenditure, gross): CLM_PMT_AMT less the excluded add-ons, and CLM_PMT_AMT. The add-ons follow the
    debit/credit method and may carry a sign where CLM_PMT_AMT does not, so they are taken off its magnitude;
    a blank add-on is none."""
    gross = required_amount("CLM_PMT_AMT", v["CLM_PMT_AMT"], PICTURES_1["CLM_PMT_AMT"])
    excluded = sum((abs(amount_of(label, v[label], PICTURES_1[label]) or ZERO) for label in PART_A_EXCLUDED), ZERO)
    try:
        return part_a_spend(gross, excluded), gross
    except ExclusionsExceedPayment as exc:
        raise FieldError("CLM_PMT_AMT", "less_than_exclusions", f"CLM_PMT_AMT {exc}") from None


def claim_id_of(file_no: str, v: dict[str, str]) -> str:
    label = "CUR_CLM_UNIQ_ID"
    return digits_of(label, required_of(label, v[label]), layout(file_no)[label].picture)


def part_a(v: dict[str, str], payer: str) -> dict[str, Any]:
    start, thru, effective, paid = _dates(v, "CLM_FROM_DT", "CLM_THRU_DT")
    expenditure, gross = part_a_amounts(v)
    return {
        "source": "cclf1",
        "claim_id": claim_id_of("1", v),
        "line_number": 0,
        "member_id": required_of("BENE_MBI_ID", v["BENE_MBI_ID"]),
        "payer": payer,
        "claim_type": CLAIM_TYPES.get(v["CLM_TYPE_CD"].zfill(2), "other"),
        "adjustment_type": _adjustment(v),
        "from_date": start,
        "thru_date": thru,
        "paid_date": paid,
        "effective_date": effective,
        "paid_amount": expenditure,
        "gross_amount": gross if gross != expenditure else None,
        # Part A claims are accepted or denied whole; a non-payment reason code denies it (packet 3.2).
        "denied": bool(v["CLM_MDCR_NPMT_RSN_CD"]),
    }


def part_b(file_no: str) -> Parser:
    source = f"cclf{file_no}"
    pictures = {label: f.picture for label, f in layout(file_no).items()}

    def parse(v: dict[str, str], payer: str) -> dict[str, Any]:
        start, thru, effective, paid = _dates(v, "CLM_LINE_FROM_DT", "CLM_LINE_THRU_DT")
        line_no = digits_of("CLM_LINE_NUM", required_of("CLM_LINE_NUM", v["CLM_LINE_NUM"]), pictures["CLM_LINE_NUM"])
        carrier = code_of(v["CLM_CARR_PMT_DNL_CD"])
        processing = v["CLM_PRCSG_IND_CD"]
        # Claims are denied by the carrier payment denial code, single lines by the processing indicator.
        denied = (bool(carrier) and carrier not in CARRIER_PAID) or (bool(processing) and processing not in LINE_ALLOWED)
        amount = amount_of("CLM_LINE_CVRD_PD_AMT", v["CLM_LINE_CVRD_PD_AMT"], pictures["CLM_LINE_CVRD_PD_AMT"])
        if amount is None and not denied:
            raise FieldError("CLM_LINE_CVRD_PD_AMT", "missing", "CLM_LINE_CVRD_PD_AMT is blank")
        return {
            "source": source,
            "claim_id": claim_id_of(file_no, v),
            "line_number": int(line_no),
            "member_id": required_of("BENE_MBI_ID", v["BENE_MBI_ID"]),
            "payer": payer,
            "claim_type": CLAIM_TYPES.get(v["CLM_TYPE_CD"].zfill(2), "dme" if file_no == "6" else "professional"),
            "adjustment_type": _adjustment(v),
            "from_date": start,
            "thru_date": thru,
            "paid_date": paid,
            "effective_date": effective,
            "paid_amount": amount or Decimal(0),
            "denied": denied,
        }

    return parse


PICTURES_7 = {label: f.picture for label, f in layout("7").items()}


def _part_d_key(v: dict[str, str]) -> list[str]:
    """The natural key's fields, numbers in one form however the payer filled them (9(12) with zeros, X(09) as
    written by the code list)."""
    key = [v[x] for x in PART_D_KEY]
    key[4] = code_of(key[4], PICTURES_7["CLM_LINE_RX_SRVC_RFRNC_NUM"].integer_digits)
    key[5] = code_of(key[5])
    return key


def part_d(v: dict[str, str], payer: str) -> dict[str, Any]:
    start, thru, effective, paid = _dates(v, "CLM_LINE_FROM_DT", None)
    return {
        "source": "cclf7",
        "claim_id": claim_id_of("7", v),
        "line_number": 0,
        "member_id": required_of("BENE_MBI_ID", v["BENE_MBI_ID"]),
        "payer": payer,
        "claim_type": "pharmacy",
        "adjustment_type": _adjustment(v),
        "from_date": start,
        "thru_date": thru,
        "paid_date": paid,
        "effective_date": effective,
        # CCLF7 carries no plan-paid amount: its one amount is the beneficiary's own payment, which is not spend.
        "paid_amount": Decimal(0),
        "member_paid_amount": amount_of("CLM_LINE_BENE_PMT_AMT", v["CLM_LINE_BENE_PMT_AMT"], PICTURES_7["CLM_LINE_BENE_PMT_AMT"]),
        "version_group": "cclf7|" + "|".join(_part_d_key(v)),
    }


# Claim file number -> how its records are cut, and the parser of the cut fields.
PARSERS: dict[str, tuple[Cutter, Parser]] = {
    "1": (Cutter("1", PART_A), part_a),
    "5": (Cutter("5", PART_B), part_b("5")),
    "6": (Cutter("6", PART_B), part_b("6")),
    "7": (Cutter("7", PART_D), part_d),
}


def enrollment_type(status: str, dual: str) -> str:
    """CCLF8 Medicare status and dual status -> the MSSP enrollment type (ESRD first, then disabled)."""
    if status in ("11", "21", "31"):
        return "esrd"
    if status == "20":
        return "disabled"
    return "aged_dual" if dual in ("02", "04", "08", "01", "03", "05", "06") else "aged_nondual"


@dataclass(frozen=True)
class Member:
    name: str
    number: str
    opener: Callable[[], io.BufferedIOBase | io.BytesIO]


def _members(paths: Sequence[Path]) -> list[Member]:
    """Every CCLF file in the given paths, zips opened."""
    out: list[Member] = []
    for path in paths:
        if zipfile.is_zipfile(path):
            archive = zipfile.ZipFile(path)
            for info in archive.infolist():
                number = file_number(info.filename)
                if number is not None and not info.is_dir():
                    out.append(Member(f"{path.name}:{info.filename}", number, lambda a=archive, i=info: a.open(i)))  # type: ignore[misc]
            continue
        number = file_number(path.name)
        if number is None:
            raise LoadError(f"{path}: not a CCLF file name (expected ...ZC<n>Y<yy>... or CCLF<n>)")
        out.append(Member(path.name, number, lambda p=path: p.open("rb")))  # type: ignore[misc]
    return out


def _records(member: Member) -> Iterator[tuple[int, bytes]]:
    with member.opener() as handle:
        for number, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\r\n")
            if raw and not raw.isspace():  # isspace stops at the first printable byte; strip would copy
                yield number, raw


def _count(text: str) -> int | None:
    """A CCLF0 count, right-aligned with blanks or zeros, with or without thousands separators."""
    digits = text.replace(",", "").strip()
    return int(digits) if digits.isascii() and digits.isdigit() else None


def _summary(member: Member, notes: list[str]) -> dict[str, tuple[int, int]]:
    """CCLF0: file number -> (record count, record length). A listed file whose count cannot be read is noted and
    not checked."""
    out: dict[str, tuple[int, int]] = {}
    for _, raw in _records(member):
        parts = [p.strip() for p in raw.decode("ascii", errors="replace").split("|")]
        if len(parts) < 3 or not parts[0].upper().startswith("CCLF"):
            continue
        count, length = _count(parts[2]), _count(parts[3]) if len(parts) > 3 else None
        if count is None:
            notes.append(f"{member.name}: the record count of {parts[0]} is not a number: not checked")
            continue
        out[parts[0][4:].upper()] = (count, length or 0)
    return out


def delivery(member: Member) -> str:
    """The monthly delivery a file belongs to: its zip, else the D<yymmdd> token of its name."""
    if ":" in member.name:
        return member.name.split(":", 1)[0]
    match = DELIVERY.search(member.name)
    return match.group(0) if match else ""


def check_counts(members: list[Member], notes: list[str]) -> None:
    by_delivery: dict[str, list[Member]] = {}
    for m in members:
        by_delivery.setdefault(delivery(m), []).append(m)
    for group in by_delivery.values():
        _check_delivery(group, notes)


def _check_delivery(members: list[Member], notes: list[str]) -> None:
    summaries = [m for m in members if m.number == "0"]
    if not summaries:
        notes.append(f"no CCLF0 beside {members[0].name}: record counts not checked")
        return
    expected: dict[str, tuple[int, int]] = {}
    for s in summaries:
        expected.update(_summary(s, notes))
    present = {m.number for m in members if m.number != "0"}
    for m in members:
        if m.number == "0" or m.number not in expected:
            continue
        count = sum(1 for _ in _records(m))
        if count != expected[m.number][0]:
            raise LoadError(f"{m.name}: {count} records, but CCLF0 says CCLF{m.number} has {expected[m.number][0]}")
    missing = sorted(set(expected) - present)
    if missing:
        notes.append("listed in CCLF0 but not delivered: " + ", ".join(f"CCLF{n}" for n in missing))


class CclfLoader:
    name = "cclf"

    def detect(self, path: Path, head: bytes) -> bool:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return any(file_number(n) for n in archive.namelist())
        if file_number(path.name) is not None:
            return True
        first = head.split(b"\n", 1)[0]
        if first.startswith((b"File Number", b"CCLF")) and b"|" in first:
            return True
        # A claim record: the from-date of some CCLF claim layout sits where that layout puts it.
        for number in CLAIM_FILES:
            f = layout(number).get("CLM_FROM_DT") or layout(number)["CLM_LINE_FROM_DT"]
            if DATE.fullmatch(first[f.start : f.end]) and len(first.rstrip()) <= max(x.end for x in layout(number).values()):
                return True
        return False

    def read(self, paths: Sequence[Path], options: LoadOptions) -> Iterator[Item]:
        members = _members(paths)
        check_counts(members, options.notes)
        # CCLF9 first: claims in every file of the set are re-keyed to the newest MBI (packet 3.1, 5.1.1).
        pairs: list[tuple[str, str]] = []
        effective: dict[str, date | None] = {}
        for m in (m for m in members if m.number == "9"):
            yield from self._xref(m, pairs, effective)
        newest = resolve_chains(pairs)
        for previous, current in newest.items():
            yield IdChange(previous, current, effective.get(previous))
        for m in members:
            if m.number == "8":
                yield from self._demographics(m, newest)
            elif m.number in PARSERS:
                yield from self._claims(m, PARSERS[m.number], newest, options.payer)
            elif m.number not in ("0", "9"):
                options.notes.append(f"{m.name}: CCLF{m.number} carries no spend of its own; read for counts only")

    def _xref(self, m: Member, pairs: list[tuple[str, str]], effective: dict[str, date | None]) -> Iterator[Item]:
        for number, raw in _records(m):
            try:
                r = Record(raw.decode("ascii"), "9")
                if r.text_of("HICN_MBI_XREF_IND") != "M":
                    continue  # H rows cross-reference retired HICNs, which claims no longer carry
                previous, current = r.required("PRVS_NUM"), r.required("CRNT_NUM")
                if previous != current:
                    pairs.append((previous, current))
                    effective[previous] = r.date("PRVS_ID_OBSLT_DT")
            except (FieldError, UnicodeDecodeError) as exc:
                yield _rejected(m, number, raw, exc)

    def _demographics(self, m: Member, newest: dict[str, str]) -> Iterator[Item]:
        for number, raw in _records(m):
            try:
                r = Record(raw.decode("ascii"), "8")
                mbi = r.required("BENE_MBI_ID")
                yield MemberRecord(
                    member_id=newest.get(mbi, mbi),
                    enrollment_type=enrollment_type(r.text_of("BENE_MDCR_STUS_CD"), code_of(r.text_of("BENE_DUAL_STUS_CD"), 2)),
                    start=r.date("BENE_RNG_BGN_DT"),
                    end=r.date("BENE_RNG_END_DT"),
                    death_date=r.date("BENE_DEATH_DT"),
                )
            except (FieldError, UnicodeDecodeError) as exc:
                yield _rejected(m, number, raw, exc)

    def _claims(self, m: Member, parser: tuple[Cutter, Parser], newest: dict[str, str], payer: str) -> Iterator[Item]:
        cut, parse = parser
        for number, raw in _records(m):
            try:
                line = parse(cut(raw.decode("ascii")), payer)
            except (FieldError, UnicodeDecodeError) as exc:
                yield _rejected(m, number, raw, exc)
                continue
            line["member_id"] = newest.get(line["member_id"], line["member_id"])
            yield line


def _rejected(m: Member, number: int, raw: bytes, exc: Exception) -> Rejected:
    if isinstance(exc, FieldError):
        reason = exc.reason
    else:
        reason = Reason("$", "encoding", "record is not ASCII text")
    return Rejected(m.name, number, f"cclf{m.number.lower()}", raw.decode("latin-1"), (reason,))
