"""Settling rows of CMS's MSSP results public-use files: our column format (../shared/data/mssp_puf) or the
Performance Year Financial and Quality Results PUF exactly as CMS publishes it, for any year.

CMS's column names vary by year and in case (N_AB / n_ab, QualScore on 0-1 or 0-100, the track as dummy
columns before PY2022 and a Current_Track letter after), so every field is looked up by a normalised name
(lower case, no underscores) among its known spellings. Only inputs are read; the published outcome columns
(EarnSaveLoss, GenSaveLoss, FinalShareRate, FinalLossRate, ReducedSS, Sav_rate) are compared against, never
used. Three published columns are read as inputs because CMS publishes nothing they could be derived from: DisAdj
(the EUC reduction, from months affected and the share of beneficiaries in affected counties), RevLossLimit
(whether the revenue-based loss limit applied, from participant revenue) and Guardrail (PY2024+: whether the ACPT
guardrail applied, from the three-way blend's benchmark, which the file replaces by the two-way blend's).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

from services.settlement.domain.settle import (
    Settlement,
    SettlementError,
    SettlementInputs,
    published_msr,
    settle,
)
from shared.terms import QualityStandard, RevenueCategory

OUTPUT_COLUMN = "computed_earned_savings_losses"
MSR_AS_FRACTION_MAX = Decimal("0.2")
# CMS's cells that hold no value (the PUF data dictionaries' conventions; "." is SAS's missing value).
SUPPRESSED = frozenset({"*", "**", "***", "."})  # too few beneficiaries to publish
NOT_APPLICABLE = frozenset({"-", "--", "\u2013", "\u2014", "n/a", "na", "not applicable"})  # compared lower-cased
Absent = Literal["blank", "suppressed", "not_applicable"]
DIGITS = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)
GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d*)?", re.ASCII)


@dataclass(frozen=True)
class Reading:
    """What one cell holds: a number (None when absent, and why), and the rules applied to read it (none for a
    plain number)."""

    value: Decimal | None
    rules: tuple[str, ...] = ()
    absent: Absent | None = None


def read_cell(text: str) -> Reading:
    """A cell by CMS's conventions: blank, `*` suppressed, `-` not applicable; otherwise a number, with or without
    `%` (a percentage, divided by 100), thousands separators, `$`, a sign before or after the `$`, and parentheses
    for a negative amount. Raises ValueError for anything else."""
    t = text.strip()
    if not t:
        return Reading(None, ("blank",), "blank")
    if t in SUPPRESSED:
        return Reading(None, ("suppressed",), "suppressed")
    if t.lower() in NOT_APPLICABLE:
        return Reading(None, ("not_applicable",), "not_applicable")
    rules: list[str] = []
    negative = t.startswith("(") and t.endswith(")")
    if negative:
        rules.append("parentheses_negative")
        t = t[1:-1].strip()
    percent = t.endswith("%")
    if percent:
        rules.append("percent")
        t = t[:-1].strip()
    sign, t = _sign(t)
    if t.startswith("$"):
        rules.append("currency")
        t = t[1:].strip()
        if not sign:
            sign, t = _sign(t)
    if "," in t:
        if not GROUPED.fullmatch(t):
            raise ValueError(f"{text!r} is not a number")
        rules.append("thousands_separator")
        t = t.replace(",", "")
    if not DIGITS.fullmatch(t) or (negative and sign):
        raise ValueError(f"{text!r} is not a number")
    value = Decimal(t)
    if negative or sign == "-":
        value = -value
    return Reading(value / 100 if percent else value, tuple(rules))


def _sign(t: str) -> tuple[str, str]:
    return (t[0], t[1:].strip()) if t[:1] in ("-", "+") else ("", t)


# Logical field -> its spellings in our format and CMS's files, normalised (lower case, no "_", " " or "-").
ALIASES: dict[str, tuple[str, ...]] = {
    "performance_year": ("performanceyear", "py", "year"),
    "aco": ("aco", "acoid"),
    "track": ("track", "currenttrack"),
    "assigned_beneficiaries": ("assignedbeneficiaries", "nab"),
    "benchmark_total": ("benchmarktotal", "abtotbnchmk"),
    "expenditure_total": ("expendituretotal", "abtotexp"),
    "msr": ("minsavingsrate", "minsavperc"),
    "quality_score": ("qualityscore", "qualscore"),
    "met_quality_standard": ("metqualitystandard", "metqps"),
    "met_alternative_standard": ("metalternativestandard", "metaltqps"),
    "euc_loss_adjustment": ("euclossadjustment", "disadj"),
    "revenue_based_loss_limit": ("revenuebasedlosslimit", "revlosslimit"),
    "revenue_category": ("revenuecategory", "revexpcat"),
    "advance_payment_recoupment": ("advancepaymentrecoupment", "aiprecoup", "advpayrecoup"),
    "mid_year_termination": ("impactmidyeartermination",),
    "updated_benchmark": ("updatedbenchmark", "updatedbnchmk"),
    "agreement_start": ("currentstartdate", "agreementstartdate"),
    "benchmark_guardrail": ("guardrail",),
    "person_years": ("personyears", "nabyearpy"),
    # Published outcomes: for comparison and for explaining a miss, never inputs.
    "published": ("earnedsavingslosses", "earnsaveloss"),
    "published_sharing_rate": ("finalsharingrate", "finalsharerate"),
}
OUTCOMES = frozenset({"published", "published_sharing_rate"})
TEXT_FIELDS = frozenset({"aco", "track", "revenue_category", "agreement_start"})
FLAG_FIELDS = frozenset(
    {"met_quality_standard", "met_alternative_standard", "revenue_based_loss_limit", "mid_year_termination"}
    | {"benchmark_guardrail"}
)
NUMBER_FIELDS = tuple(f for f in ALIASES if f not in OUTCOMES | TEXT_FIELDS)
# Before PY2022 CMS gives the track as one 0/1 column per track.
TRACK_DUMMIES: dict[str, str] = {
    "currenttrack1": "T1",
    "currenttrack1plus": "T1P",
    "currenttrack2": "T2",
    "currenttrack3": "T3",
    "currentbasica": "BA",
    "currentbasicb": "BB",
    "currentbasicc": "BC",
    "currentbasicd": "BD",
    "currentbasice": "BE",
    "currentenhanced": "EN",
}
TRACK_WORDS: dict[str, str] = {
    **{t: t for t in ("T1", "T1P", "T2", "T3", "BA", "BB", "BC", "BD", "BE", "EN")},
    **{letter: f"B{letter}" for letter in "ABCDE"},
    "ENHANCED": "EN",
    "1": "T1",
    "1+": "T1P",
    "1PLUS": "T1P",
    "2": "T2",
    "3": "T3",
}


def normalise(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.strip().lower())


class Columns:
    """Where each logical field lives in one file's header."""

    def __init__(self, header: Iterable[str]) -> None:
        by_norm: dict[str, str] = {}
        for name in header:
            by_norm.setdefault(normalise(name), name)
        self.fields = {f: next((by_norm[a] for a in aliases if a in by_norm), None) for f, aliases in ALIASES.items()}
        self.dummies = {by_norm[k]: track for k, track in TRACK_DUMMIES.items() if k in by_norm}

    def label(self, field: str) -> str:
        return self.fields.get(field) or field


class RowError(ValueError):
    """A row that cannot be settled; the message names the column."""


@dataclass(frozen=True)
class Cell:
    columns: Columns
    row: dict[str, str]

    def raw(self, field: str) -> str | None:
        column = self.columns.fields.get(field)
        return None if column is None else (self.row.get(column) or "")

    def reading(self, field: str) -> Reading:
        raw = self.raw(field)
        if raw is None:
            return Reading(None, ("missing",), "blank")
        try:
            return read_cell(raw)
        except ValueError:
            raise RowError(f"{self.columns.label(field)}: {raw.strip()!r} is not a number") from None

    def text(self, field: str) -> str | None:
        """The cell's text, None when it holds no value (blank, suppressed, not applicable)."""
        raw = (self.raw(field) or "").strip()
        if not raw or raw in SUPPRESSED or raw.lower() in NOT_APPLICABLE:
            return None
        return raw

    def number(self, field: str) -> Decimal | None:
        return self.reading(field).value

    def required(self, field: str) -> Decimal:
        reading = self.reading(field)
        if reading.value is None:
            what = {"suppressed": "suppressed", "not_applicable": "not applicable"}.get(reading.absent or "", "empty or missing")
            raise RowError(f"{self.columns.label(field)}: required column is {what}")
        return reading.value

    def flag(self, field: str) -> bool | None:
        text = self.text(field)
        if text is None:
            return None
        if text.lower() in ("y", "yes", "true"):
            return True
        if text.lower() in ("n", "no", "false"):
            return False
        value = self.number(field)
        return None if value is None else value != 0


def cell_rules(rows: list[dict[str, str]], fields: Iterable[str] | None = None) -> dict[str, Counter[str]]:
    """For each column a settlement reads (or `fields`), how many of its cells were read by each rule other than
    a plain number: what the reader did with the file, for its user to check."""
    if not rows:
        return {}
    columns = Columns(rows[0].keys())
    out: dict[str, Counter[str]] = {}
    for field in fields or NUMBER_FIELDS:
        column = columns.fields.get(field)
        if column is None:
            continue
        counts: Counter[str] = Counter()
        for row in rows:
            text = (row.get(column) or "").strip()
            if field in FLAG_FIELDS and text.lower() in ("y", "yes", "true", "n", "no", "false"):
                counts["yes_no"] += 1
                continue
            try:
                counts.update(read_cell(text).rules)
            except ValueError:
                counts["not a number"] += 1
        if counts:
            out[column] = counts
    return out


def _track(cell: Cell) -> str:
    text = cell.text("track")
    if text is not None:
        word = re.sub(r"^(BASIC\s*(LEVEL)?|LEVEL|TRACK)\s*", "", text.strip().upper()).replace(" ", "")
        if word in TRACK_WORDS:
            return TRACK_WORDS[word]
        raise RowError(f"{cell.columns.label('track')}: {text!r} is not a known track")
    chosen = [track for column, track in cell.columns.dummies.items() if (cell.row.get(column) or "").strip() in ("1", "1.0")]
    if len(chosen) == 1:
        return chosen[0]
    if not cell.columns.dummies:
        raise RowError("track: no track column (Current_Track, or the Current_Track_* / Current_BASIC_* dummies)")
    if all(not (cell.row.get(column) or "").strip() for column in cell.columns.dummies):
        raise RowError("Current_Track_*: blank in this row: the file does not say the row's track")
    raise RowError(f"Current_Track_*: {len(chosen)} track columns are set; expected exactly one")


def _standard(cell: Cell, score: Decimal | None) -> QualityStandard:
    met = cell.flag("met_quality_standard")
    alternative = cell.flag("met_alternative_standard")
    if met:
        return "met"
    if met is False:
        return "alternative" if alternative else "not_met"
    if alternative:
        return "alternative"
    return "met" if score is None or score > 0 else "not_met"


def _revenue(cell: Cell) -> RevenueCategory | None:
    text = cell.text("revenue_category")
    if text is None:
        return None
    lowered = text.lower()
    if "low" in lowered:
        return "low"
    if "high" in lowered:
        return "high"
    raise RowError(f"{cell.columns.label('revenue_category')}: {text!r} is neither low nor high revenue")


def inputs_from_row(columns: Columns, row: dict[str, str], year: int | None = None) -> SettlementInputs:
    cell = Cell(columns, row)
    year_value = cell.number("performance_year")
    if year_value is None and year is None:
        raise RowError("performance_year: the file has no year column; pass --performance-year")
    performance_year = year if year is not None else int(year_value)  # type: ignore[arg-type]
    if year_value is not None and year is not None and int(year_value) != year:
        raise RowError(f"{columns.label('performance_year')}: {int(year_value)} but --performance-year is {year}")
    beneficiaries = cell.required("assigned_beneficiaries")
    if beneficiaries != beneficiaries.to_integral_value() or beneficiaries < 0:
        raise RowError(f"{columns.label('assigned_beneficiaries')}: must be a whole, non-negative number")
    score = cell.number("quality_score")
    if score is not None and score > 1:
        score = score / 100  # CMS publishes QualScore on a 0-100 scale from PY2022
    if score is not None and not 0 <= score <= 1:
        raise RowError(f"{columns.label('quality_score')}: {score} is outside 0-1 (or 0-100)")
    track = _track(cell)
    n = int(beneficiaries)
    benchmark = cell.required("benchmark_total")
    msr = cell.number("msr")
    if msr is not None and msr > MSR_AS_FRACTION_MAX:
        msr = msr / 100  # printed as a percentage: no MSR is above 20% (small ACOs reach about 12%)
    return SettlementInputs(
        program="MSSP",
        track=track,
        performance_year=performance_year,
        assigned_beneficiaries=n,
        benchmark_total=benchmark,
        expenditure_total=cell.required("expenditure_total"),
        msr=None if msr is None else published_msr(msr, n),
        quality_score=score,
        quality_standard=_standard(cell, score),
        euc_loss_adjustment=cell.number("euc_loss_adjustment"),
        revenue_based_loss_cap=cell.flag("revenue_based_loss_limit"),
        revenue_category=_revenue(cell),
        advance_payment_recoupment=cell.number("advance_payment_recoupment"),
        period_months=_period_months(cell, benchmark),
        agreement_start=_agreement_start(cell),
        benchmark_guardrail=bool(cell.flag("benchmark_guardrail")),
    )


DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%m/%d/%y", "%d%b%Y", "%Y%m%d")


def _agreement_start(cell: Cell) -> date | None:
    """Current_Start_Date as CMS prints it (07/01/2019, 1/1/2024, a time after it in some years) or in ISO form."""
    text = cell.text("agreement_start")
    if text is None:
        return None
    day = text.split()[0].split("T")[0]
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(day, fmt).date()
        except ValueError:
            continue
    raise RowError(f"{cell.columns.label('agreement_start')}: {text!r} is not a date (MM/DD/YYYY or YYYY-MM-DD)")


def _period_months(cell: Cell, benchmark_total: Decimal) -> int:
    """6 for the six-month performance periods of 2019 (42 CFR 425.609), whose totals CMS publishes for half a
    year: the total benchmark is then half the per-capita benchmark times the person-years."""
    per_capita, person_years = cell.number("updated_benchmark"), cell.number("person_years")
    if not per_capita or not person_years:
        return 12
    share = benchmark_total / (per_capita * person_years)
    return 6 if abs(share - Decimal("0.5")) <= Decimal("0.01") else 12


@dataclass(frozen=True)
class RowResult:
    line: int
    row: dict[str, str]
    settlement: Settlement | None
    error: str | None
    published: Decimal | None
    year: int | None = None

    @property
    def computed(self) -> Decimal | None:
        return None if self.settlement is None else self.settlement.earned

    def within(self, dollars: Decimal = Decimal(0), share: Decimal = Decimal(0)) -> bool:
        if self.published is None or self.computed is None:
            return False
        diff = abs(self.computed - self.published)
        return diff <= dollars or diff <= share * abs(self.published)


def _readable(cell: Cell, field: str) -> Decimal | None:
    try:
        return cell.number(field)
    except RowError:
        return None


def settle_rows(rows: Iterable[dict[str, str]], year: int | None = None) -> Iterator[RowResult]:
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return
    columns = Columns(first.keys())
    for line, row in enumerate([first, *rows], start=2):
        cell = Cell(columns, row)
        published, row_year = (_readable(cell, field) for field in ("published", "performance_year"))
        try:
            inputs = inputs_from_row(columns, row, year)
            result = settle(inputs)
        except (SettlementError, ValueError, KeyError) as exc:
            message = str(exc).strip("'\"")
            # A row that cannot be settled still counts against its year when the year can be read.
            yield RowResult(line, row, None, message, published, year if year is not None or row_year is None else int(row_year))
        else:
            yield RowResult(line, row, result, None, published, inputs.performance_year)


def explain_miss(result: RowResult) -> str:
    """Why a row's computed amount differs from CMS's, from what the row says and what it does not publish."""
    if result.error:
        return result.error
    assert result.settlement is not None
    cell = Cell(Columns(result.row.keys()), result.row)
    reasons = [
        note for note in (_quality_note(cell, result.settlement), _loss_note(cell, result), _termination_note(cell)) if note
    ]
    reasons.extend(result.settlement.explanation)
    return "; ".join(reasons) or "no note"


def _quality_note(cell: Cell, s: Settlement) -> str | None:
    try:
        rate = cell.number("published_sharing_rate")
    except RowError:
        return None
    if rate is not None and rate > 1:
        rate = rate / 100
    if rate == 0 and s.final_sharing_rate > 0 and s.gate == "savings":
        return (
            f"CMS's final sharing rate is 0 where the inputs give {s.final_sharing_rate}: a quality failure the file"
            " does not show (incomplete reporting or a failed domain)"
        )
    return None


def _loss_note(cell: Cell, result: RowResult) -> str | None:
    s = result.settlement
    if s is None or s.gate != "losses" or result.published is None:
        return None
    euc = cell.number("euc_loss_adjustment") or Decimal(0)
    revenue = _revenue_limit_note(cell, result, euc)
    if revenue is not None:
        return revenue
    if not euc:
        return None
    before = s.earned - s.euc_adjustment
    if abs(before - euc / 2 - result.published) <= 1:
        return (
            f"CMS's figure takes half of DisAdj {euc}: a six-month 2019 period (42 CFR 425.609), whose annual EUC"
            " amount is halved; this file lacks the UpdatedBnchmk and N_AB_Year_PY columns that show the period"
        )
    return f"published DisAdj {euc} does not reconcile: CMS's losses before it {result.published + euc} against {before} computed"


def _revenue_limit_note(cell: Cell, result: RowResult, euc: Decimal) -> str | None:
    """A revenue-based loss limit the file says applied (RevLossLimit), or, where the file does not say, one that a
    low-revenue ACO's figure is consistent with: participant revenue is not published in either case."""
    from services.settlement.domain.parameters import LOW_REVENUE_SHARE

    applied, rate = cell.flag("revenue_based_loss_limit"), _revenue_cap_rate(result)
    if not rate or applied is False or (applied is None and _revenue(cell) != "low") or result.published is None:
        return None
    implied = (-(result.published + euc) / rate).quantize(Decimal(1))
    if applied:
        return (
            "the revenue-based loss limit applied and ACO participant revenue is not published (CMS's figure implies"
            f" about {implied:,})"
        )
    bound = (LOW_REVENUE_SHARE * cell.required("expenditure_total")).quantize(Decimal(1))
    consistent = "consistent with" if 0 < implied < bound else "NOT consistent with"
    return (
        f"the file does not say whether the revenue-based loss limit applied (no RevLossLimit column) nor publish ACO"
        f" participant revenue: CMS's figure implies participant revenue of about {implied:,} at {rate:.0%}, {consistent}"
        f" the low-revenue class (under {LOW_REVENUE_SHARE:.0%} of the assigned beneficiaries' expenditure, {bound:,};"
        " 42 CFR 425.20)"
    )


def _termination_note(cell: Cell) -> str | None:
    if cell.text("mid_year_termination") not in (None, "0", "0.0"):
        return "mid-year termination: the months of participation are not published"
    return None


def _revenue_cap_rate(result: RowResult) -> Decimal | None:
    from services.settlement.domain.parameters import track_parameters

    if result.settlement is None or result.year is None:
        return None
    try:
        track = _track(Cell(Columns(result.row.keys()), result.row))
        return track_parameters("MSSP", track, result.year).loss_cap_revenue
    except (RowError, KeyError):
        return None


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def write_results(path: Path, fieldnames: list[str], results: list[RowResult]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*fieldnames, OUTPUT_COLUMN])
        writer.writeheader()
        for result in results:
            computed = "" if result.computed is None else str(result.computed)
            writer.writerow({**result.row, OUTPUT_COLUMN: computed})
