"""Tuva Project input-layer CSV: medical_claim and pharmacy_claim, current column names (person_id) and
older ones (patient_id). Tuva rows are final claim lines; a reversal is a row with a negative amount."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from readers.base import FieldError, Item, LoadOptions, Rejected

MEDICAL_MARKERS = {"claim_id", "claim_type", "paid_amount"}
PHARMACY_MARKERS = {"claim_id", "ndc_code", "paid_amount"}
MEMBER_COLUMNS = ("member_id", "person_id", "patient_id")
ID_CLEAN = re.compile(r"[^A-Za-z0-9_.:\-]")
# Type of bill: the first two digits say the facility and the setting.
BILL_TYPES = {"11": "inpatient", "12": "inpatient", "13": "outpatient", "14": "outpatient", "18": "snf", "21": "snf",
              "22": "snf", "23": "snf", "32": "hha", "33": "hha", "34": "hha", "81": "hospice", "82": "hospice"}  # fmt: skip


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        return [h.strip().lower() for h in next(csv.reader(handle), [])]


def _date(row: dict[str, str], *columns: str) -> date | None:
    for column in columns:
        value = (row.get(column) or "").strip()
        if value:
            try:
                return date.fromisoformat(value[:10]) if "-" in value[:10] else datetime.strptime(value, "%Y%m%d").date()
            except ValueError:
                raise FieldError(column, "date_parsing", f"{column} {value!r} is not a date") from None
    return None


def _required_date(row: dict[str, str], *columns: str) -> date:
    value = _date(row, *columns)
    if value is None:
        raise FieldError(columns[0], "missing", f"{' or '.join(columns)} is blank")
    return value


def _amount(row: dict[str, str], column: str) -> Decimal:
    value = (row.get(column) or "").strip().replace(",", "")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise FieldError(column, "decimal_parsing", f"{column} {value!r} is not an amount") from None
    if not amount.is_finite():
        raise FieldError(column, "finite_number", f"{column} is not finite")
    return amount


def _member(row: dict[str, str]) -> str:
    for column in MEMBER_COLUMNS:
        value = (row.get(column) or "").strip()
        if value:
            return value
    raise FieldError("member_id", "missing", "member_id, person_id and patient_id are all blank")


def _payer(row: dict[str, str], default: str) -> str:
    value = ID_CLEAN.sub("_", (row.get("payer") or "").strip())
    return value or default


def _line_number(row: dict[str, str]) -> int:
    value = (row.get("claim_line_number") or "1").strip()
    if not value.isdigit():
        raise FieldError("claim_line_number", "int_parsing", f"claim_line_number {value!r} is not a number")
    return int(value)


def _common(row: dict[str, str], payer: str, source: str) -> dict[str, Any]:
    claim = (row.get("claim_id") or "").strip()
    if not claim:
        raise FieldError("claim_id", "missing", "claim_id is blank")
    return {
        "source": source,
        "claim_id": claim,
        "line_number": _line_number(row),
        "member_id": _member(row),
        "payer": _payer(row, payer),
        "adjustment_type": "original",
    }


def medical(row: dict[str, str], payer: str) -> dict[str, Any]:
    line = _common(row, payer, "tuva:medical")
    start = _required_date(row, "claim_line_start_date", "claim_start_date", "admission_date")
    thru = _date(row, "claim_line_end_date", "claim_end_date", "discharge_date") or start
    kind = (row.get("claim_type") or "").strip().lower()
    if kind == "professional":
        claim_type = "professional"
    elif kind == "institutional":
        claim_type = BILL_TYPES.get((row.get("bill_type_code") or "").strip().lstrip("0")[:2], "outpatient")
    else:
        claim_type = "dme" if kind == "dme" else "other"
    paid = _date(row, "paid_date") or thru
    line.update(
        claim_type=claim_type,
        from_date=start,
        thru_date=max(thru, start),
        paid_date=max(paid, start),
        paid_amount=_amount(row, "paid_amount"),
    )
    return line


def pharmacy(row: dict[str, str], payer: str) -> dict[str, Any]:
    line = _common(row, payer, "tuva:pharmacy")
    start = _required_date(row, "dispensing_date", "paid_date")
    paid = _date(row, "paid_date") or start
    line.update(claim_type="pharmacy", from_date=start, thru_date=start, paid_date=max(paid, start),
                paid_amount=_amount(row, "paid_amount"))  # fmt: skip
    return line


class TuvaLoader:
    name = "tuva"

    def detect(self, path: Path, head: bytes) -> bool:
        if path.suffix.lower() != ".csv":
            return False
        columns = set(head.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").strip().lower().split(","))
        return bool(columns & set(MEMBER_COLUMNS)) and (MEDICAL_MARKERS <= columns or PHARMACY_MARKERS <= columns)

    def read(self, paths: Sequence[Path], options: LoadOptions) -> Iterator[Item]:
        for path in paths:
            columns = set(_header(path))
            parse = pharmacy if "ndc_code" in columns else medical
            fmt = "tuva:pharmacy_claim" if parse is pharmacy else "tuva:medical_claim"
            with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
                reader = csv.DictReader(handle)
                reader.fieldnames = [f.strip().lower() for f in reader.fieldnames or []]
                for row in reader:
                    try:
                        yield parse(row, options.payer)
                    except FieldError as exc:
                        original = ",".join(f"{k}={v}" for k, v in row.items() if v)
                        yield Rejected(path.name, reader.line_num, fmt, original, (exc.reason,))
