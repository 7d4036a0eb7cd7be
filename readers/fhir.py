"""FHIR R4 ExplanationOfBenefit: a Bundle (JSON) or bulk NDJSON, as CARIN Blue Button / BCDA / BFD and
other conformant producers write them. One EOB becomes one claim line (line 0) carrying the claim's
paid amount; Patient resources in the same load map patient references to MBIs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from readers.base import FieldError, IdChange, Item, LoadOptions, Rejected
from shared.envelope import Reason
from shared.expenditure import PART_A, ExclusionsExceedPayment, part_a_spend
from shared.money import MONEY_SCALE

MBI_SYSTEMS = ("http://hl7.org/fhir/sid/us-mbi", "https://bluebutton.cms.gov/resources/identifier/mbi-hash")
EOB_TYPES = {
    "INPATIENT": "inpatient", "OUTPATIENT": "outpatient", "SNF": "snf", "HHA": "hha", "HOSPICE": "hospice",
    "CARRIER": "professional", "DME": "dme", "PDE": "pharmacy",
}  # fmt: skip
CLAIM_TYPE_CODES = {"10": "hha", "20": "snf", "30": "snf", "40": "outpatient", "50": "hospice", "60": "inpatient",
                    "61": "inpatient", "71": "professional", "72": "professional", "81": "dme", "82": "dme"}  # fmt: skip
C4BB_TYPES = {"pharmacy": "pharmacy", "professional": "professional", "institutional": "outpatient", "oral": "other",
              "vision": "other"}  # fmt: skip
# Adjudication categories that carry what the plan paid, CMS and CARIN names, tried in this order.
PAID_CATEGORIES = ("benefit", "paidtoprovider", "line_nch_pmt_amt", "CLM_LINE_CVRD_PD_AMT", "cvrd_d_plan_pd_amt")
# The Part A add-ons the payment includes and expenditure leaves out (shared/expenditure.py): operating IME and
# DSH (value codes 18, 19) and uncompensated care. BFD v3 gives them as claim-level adjudication
# categories (one spelled CLM_OPRTNL_DSPRTNT_AMT there), BFD R4 (CARIN) as extensions. Capital IME and DSH count.
EXCLUDED_CATEGORIES = frozenset(
    {"clm_oprtnl_ime_amt", "clm_oprtnl_dsprprtnt_amt", "clm_oprtnl_dsprtnt_amt", "clm_hipps_uncompd_care_amt"}
)
EXCLUDED_EXTENSIONS = frozenset({"ime_op_clm_val_amt", "dsh_op_clm_val_amt", "clm_uncompd_care_pmt_amt"})


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _codes(concept: Any) -> list[tuple[str, str]]:
    return [(str(c.get("system", "")), str(c.get("code", ""))) for c in _list(_obj(concept).get("coding")) if isinstance(c, dict)]


def _category(entry: dict[str, Any]) -> str:
    """The last path segment of an adjudication category code (BFD puts a URL in the code)."""
    for _, code in _codes(entry.get("category")):
        return code.rsplit("/", 1)[-1]
    return ""


def _money(value: Any, field: str) -> Decimal:
    # json.loads gives Decimal for numbers (parse_float), so 12.345 stays exact.
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise FieldError(field, "decimal_type", f"{field} is not a number")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise FieldError(field, "decimal_parsing", f"{field} {value!r} is not a number") from None
    if not amount.is_finite():
        raise FieldError(field, "finite_number", f"{field} is not finite")
    return denoted(amount, field)


MONEY_PLACES = Decimal(1).scaleb(-MONEY_SCALE)
FLOAT_NOISE = Decimal("1e-12")


def denoted(amount: Decimal, field: str) -> Decimal:
    """The amount a FHIR writer meant. Generators that hold money in binary floats write 112.416 as
    112.41600000000001: a value within a trillionth of one with at most 6 decimals is read as that value; a
    value with more decimals that is not such noise is refused, as money is never rounded."""
    try:
        exact = amount.quantize(MONEY_PLACES)
    except InvalidOperation:
        raise FieldError(field, "decimal_max_digits", f"{field} {amount} is too large") from None
    if exact == amount:
        return amount
    if abs(amount - exact) <= FLOAT_NOISE:
        return exact
    raise FieldError(field, "decimal_max_places", f"{field} {amount} has more than 6 decimals")


def paid_amount(eob: dict[str, Any]) -> Decimal:
    """payment.amount when present; else a total, else the sum over items, of the category that carries
    the paid amount (PDE EOBs have no payment.amount)."""
    amount = _obj(eob.get("payment")).get("amount")
    if isinstance(amount, dict) and "value" in amount:
        return _money(amount["value"], "payment.amount.value")
    for wanted in PAID_CATEGORIES:
        totals = [t for t in _list(eob.get("total")) if isinstance(t, dict) and _category(t) == wanted and "amount" in t]
        if totals:
            return sum((_money(_obj(t["amount"]).get("value"), "total.amount.value") for t in totals), Decimal(0))
        found = False
        total = Decimal(0)
        for i, item in enumerate(_list(eob.get("item"))):
            for adj in _list(_obj(item).get("adjudication")):
                if isinstance(adj, dict) and _category(adj) == wanted and "amount" in adj:
                    found = True
                    total += _money(_obj(adj["amount"]).get("value"), f"item[{i}].adjudication.amount.value")
        if found:
            return total
    raise FieldError("payment.amount", "missing", "no payment.amount and no adjudication carrying the paid amount")


def excluded_amount(eob: dict[str, Any]) -> Decimal:
    """The claim's IME, DSH and uncompensated-care payments, which its paid amount includes."""
    total = Decimal(0)
    for i, adj in enumerate(_list(eob.get("adjudication"))):
        if isinstance(adj, dict) and _category(adj).lower() in EXCLUDED_CATEGORIES and "amount" in adj:
            total += abs(_money(_obj(adj["amount"]).get("value"), f"adjudication[{i}].amount.value"))
    for i, ext in enumerate(_list(eob.get("extension"))):
        if isinstance(ext, dict) and str(ext.get("url", "")).rsplit("/", 1)[-1].lower() in EXCLUDED_EXTENSIONS:
            total += abs(_money(_obj(ext.get("valueMoney")).get("value"), f"extension[{i}].valueMoney.value"))
    return total


def claim_type(eob: dict[str, Any]) -> str:
    codes = _codes(eob.get("type"))
    for system, code in codes:
        if "eob-type" in system.lower() or system.endswith("EOB-TYPE"):
            return EOB_TYPES.get(code.upper(), "other")
    for system, code in codes:
        if system.lower().endswith(("clm-type-cd", "nch_clm_type_cd")) and code in CLAIM_TYPE_CODES:
            return CLAIM_TYPE_CODES[code]
    for _, code in codes:
        if code in C4BB_TYPES:
            return C4BB_TYPES[code]
    return "other"


def _date(value: Any, field: str) -> date:
    if not isinstance(value, str):
        raise FieldError(field, "missing", f"{field} is missing")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise FieldError(field, "date_parsing", f"{field} {value!r} is not a date") from None


def _maybe_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if isinstance(value, str) else None
    except ValueError:
        return None


def claim_id(eob: dict[str, Any]) -> str:
    for ident in _list(eob.get("identifier")):
        if isinstance(ident, dict) and any(code == "uc" for _, code in _codes(ident.get("type"))) and ident.get("value"):
            return str(ident["value"])
    if eob.get("id"):
        return str(eob["id"])
    raise FieldError("identifier", "missing", "no id and no unique-claim identifier")


def member_of(eob: dict[str, Any], mbis: dict[str, str]) -> str:
    patient = _obj(eob.get("patient"))
    ident = _obj(patient.get("identifier"))
    if ident.get("system") in MBI_SYSTEMS and ident.get("value"):
        return str(ident["value"])
    reference = str(patient.get("reference") or "")
    if not reference:
        raise FieldError("patient.reference", "missing", "no patient reference")
    return mbis.get(reference, reference.rsplit("/", 1)[-1])


def to_line(eob: dict[str, Any], mbis: dict[str, str], payer: str) -> dict[str, Any] | None:
    status = eob.get("status")
    if status == "draft" or eob.get("use") in ("preauthorization", "predetermination"):
        return None  # not adjudicated, or not a claim for services rendered: no spend
    period = _obj(eob.get("billablePeriod"))
    start = _date(period.get("start") or eob.get("created"), "billablePeriod.start")
    thru = _maybe_date(period.get("end")) or start
    paid = _maybe_date(_obj(eob.get("payment")).get("date")) or _maybe_date(eob.get("created"))
    if paid is None or paid < start:
        paid = thru
    kind = claim_type(eob)
    gross = paid_amount(eob)
    try:
        expenditure = part_a_spend(gross, excluded_amount(eob)) if kind in PART_A else gross
    except ExclusionsExceedPayment as exc:
        raise FieldError("payment.amount", "less_than_exclusions", f"payment {exc}") from None
    return {
        # Producers' claim ids are unique per claim family, not across them.
        "source": f"fhir:{kind}",
        "claim_id": claim_id(eob),
        "line_number": 0,
        "member_id": member_of(eob, mbis),
        "payer": payer,
        "claim_type": kind,
        # A cancelled EOB takes its claim's spend back; one entered in error never stood for any.
        "adjustment_type": "cancellation" if status == "cancelled" else "original",
        "from_date": start,
        "thru_date": thru,
        "paid_date": paid,
        "paid_amount": expenditure,
        "gross_amount": gross if expenditure != gross else None,
        "denied": status == "entered-in-error" or eob.get("outcome") == "error",
    }


def _resources(path: Path) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
    """(line, raw text, resource or None when unparseable) for a Bundle, a single resource, or NDJSON."""
    text = path.read_text(encoding="utf-8", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            if doc.get("resourceType") == "Bundle":
                for i, entry in enumerate(doc.get("entry", []), start=1):
                    resource = entry.get("resource") if isinstance(entry, dict) else None
                    yield i, json.dumps(entry, default=str), resource if isinstance(resource, dict) else None
            else:
                yield 1, text, doc
            return
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw, parse_float=Decimal)
        except json.JSONDecodeError:
            value = None
        yield number, raw, value if isinstance(value, dict) else None


def patient_mbis(paths: Iterable[Path]) -> tuple[dict[str, str], list[IdChange]]:
    """Patient reference -> current MBI, and the retired MBIs a Patient lists (they re-key older claims).
    The current MBI is the one whose period has not ended (else the latest to start)."""
    out: dict[str, str] = {}
    changes: list[IdChange] = []
    for path in paths:
        for _, _, resource in _resources(path):
            if not resource or resource.get("resourceType") != "Patient" or not resource.get("id"):
                continue
            mbis = [i for i in resource.get("identifier", []) if i.get("system") == MBI_SYSTEMS[0] and i.get("value")]
            if not mbis:
                continue
            ranked = sorted(
                mbis, key=lambda i: (not (i.get("period") or {}).get("end"), (i.get("period") or {}).get("start", ""))
            )
            current = str(ranked[-1]["value"])
            out[f"Patient/{resource['id']}"] = current
            for old in ranked[:-1]:
                if str(old["value"]) != current:
                    changes.append(IdChange(str(old["value"]), current, _maybe_date((old.get("period") or {}).get("end"))))
    return out, changes


class FhirLoader:
    name = "fhir"

    def detect(self, path: Path, head: bytes) -> bool:
        return path.suffix.lower() in (".json", ".ndjson", ".jsonl") and b'"resourceType"' in head

    def read(self, paths: Sequence[Path], options: LoadOptions) -> Iterator[Item]:
        mbis, changes = patient_mbis(paths)
        yield from changes
        for path in paths:
            for number, raw, resource in _resources(path):
                if resource is None:
                    yield Rejected(path.name, number, "fhir", raw, (Reason("$", "json_invalid", "not a JSON object"),))
                    continue
                kind = resource.get("resourceType")
                if kind != "ExplanationOfBenefit":
                    continue  # Patient, Coverage and the like carry no spend
                try:
                    line = to_line(resource, mbis, options.payer)
                except FieldError as exc:
                    yield Rejected(path.name, number, "fhir", raw, (exc.reason,))
                    continue
                except (AttributeError, TypeError, ValueError) as exc:
                    # An element of the wrong JSON type (an object where a list belongs, ...): not a conformant EOB.
                    reason = Reason("$", "structure", f"not a conformant ExplanationOfBenefit: {type(exc).__name__}: {exc}"[:300])
                    yield Rejected(path.name, number, "fhir", raw, (reason,))
                    continue
                if line is not None:
                    yield line
