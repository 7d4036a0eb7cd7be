"""`acoflow benchmark backtest`: predict each ACO's performance-year benchmark (UpdatedBnchmk) for year Y from
the prior year's results file and what an ACO knows during year Y, and score it against CMS's published one.

From the current file only these are read: the ACO's id and name, agreement start date, HistBnchmk, the base-year
spending and the CMS-HCC risk scores and person-years by enrollment type (what CMS's benchmark and quarterly
reports give during the year). Never UpdatedBnchmk (but to score), ABtotBnchmk, ABtotExp, performance-year
spending or any savings/loss column.

The estimate (METHODOLOGY.md section 6): the per-type historical benchmark, risk-adjusted to the year (capped by
the agreement's rule) and weighted by the year's person-years (domain/benchmark.py), times a trend. The trend is
the national part for the ACO's base-year cohort (its BY3) and the ACO's own, persistent deviation from it, both
taken from the prior year's file, carried forward one year by the newest national one-year trend that file shows
(the cohort whose agreement began that year)."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from services.settlement.domain.benchmark import BenchmarkInputs, Trend, historical_by_type, updated_benchmark
from services.settlement.puf import Cell, Columns, RowError, normalise, read_rows
from shared.terms import ENROLLMENT_TYPES, EnrollmentType

D = Decimal
TYPE_STEMS: dict[EnrollmentType, tuple[str, str]] = {  # (spending / risk stem, person-years stem)
    "esrd": ("esrd", "esrd"),
    "disabled": ("dis", "dis"),
    "aged_dual": ("agdu", "aged_dual"),
    "aged_nondual": ("agnd", "aged_nondual"),
}


def rows_of_year(path: Path, year: int) -> list[dict[str, str]]:
    """The file's rows for `year`: all of them when it has no year column (CMS's yearly files), else those of
    the year (a multi-year file such as ../shared/data/mssp_puf/mssp_cms_columns_2013_2021.csv)."""
    rows = read_rows(path)
    if not rows:
        return []
    columns = Columns(rows[0].keys())
    if columns.fields.get("performance_year") is None:
        return rows
    out = []
    for row in rows:
        value = Cell(columns, row).number("performance_year")
        if value is not None and int(value) == year:
            out.append(row)
    return out


class _Row:
    """Typed, case-insensitive access to one row's benchmark columns."""

    def __init__(self, row: dict[str, str]) -> None:
        self.values = {normalise(k): (v or "").strip() for k, v in row.items()}

    def text(self, *names: str) -> str:
        for name in names:
            value = self.values.get(normalise(name), "")
            if value and value not in ("*", "."):
                return value
        return ""

    def number(self, name: str) -> Decimal:
        text = self.text(name).replace(",", "").replace("$", "")
        if not text:
            raise RowError(f"{name}: empty or missing")
        return D(text)

    @property
    def key(self) -> str:
        return self.text("aco_id", "aco_name", "aco").upper()

    @property
    def start_year(self) -> int:
        text = self.text("current_start_date", "agreement_start_date")
        found = re.findall(r"\d{4}", text)
        if not found:
            raise RowError("Current_Start_Date: empty or not a date")
        return int(found[0])

    def _by_type(self, pattern: str, index: int) -> dict[EnrollmentType, Decimal] | None:
        """One column per enrollment type, or None when the file lacks any of them."""
        try:
            return {t: self.number(pattern.format(stems[index])) for t, stems in TYPE_STEMS.items()}
        except RowError:
            return None

    def inputs(self) -> BenchmarkInputs:
        """The benchmark's inputs as far as the file gives them: without base-year spending by type every type
        gets the aggregate historical benchmark, without risk scores the ratio is 1, without person-years by type
        the types weigh alike; the trend then absorbs what is missing."""
        hist = self.number("histbnchmk")
        years = self._by_type("n_ab_year_{}_py", 1)
        by3_years = self._by_type("n_ab_year_{}_by3", 1)
        spent = [self._by_type(f"per_capita_exp_all_{{}}_by{i}", 0) for i in (1, 2, 3)]
        if all(s is not None for s in spent) and by3_years is not None and sum(by3_years.values()) > 0:
            base = {t: tuple(s[t] for s in spent if s is not None) for t in ENROLLMENT_TYPES}
            historical = historical_by_type(hist, base, by3_years)  # type: ignore[arg-type]
        else:
            historical = {t: hist for t in ENROLLMENT_TYPES}
        return BenchmarkInputs(
            historical=historical,
            risk_by3=self._by_type("cms_hcc_riskscore_{}_by3", 0) or {},
            risk_py=self._by_type("cms_hcc_riskscore_{}_py", 0) or {},
            person_years=years if years is not None and sum(years.values()) > 0 else dict.fromkeys(ENROLLMENT_TYPES, D(1)),
            agreement_start_year=self.start_year,
            trend=Trend(national=D(1), acpt=D(1)),  # everything but the trend: the trend is estimated apart
        )

    def before_trend(self) -> Decimal:
        """The benchmark per capita with every step but the trend: historical, risk and the year's mix."""
        return updated_benchmark(self.inputs()).per_capita


@dataclass(frozen=True)
class Prediction:
    key: str
    predicted: Decimal
    published: Decimal
    naive: Decimal

    @property
    def error(self) -> Decimal:
        return abs(self.predicted / self.published - 1)

    @property
    def naive_error(self) -> Decimal:
        return abs(self.naive / self.published - 1)


@dataclass(frozen=True)
class Backtest:
    predictions: tuple[Prediction, ...]
    skipped: tuple[tuple[str, str], ...]
    national_one_year: Decimal  # the growth factor the prior file's newest cohort shows, carried to year Y


def _median(values: Iterable[Decimal]) -> Decimal:
    return D(statistics.median(list(values)))


def backtest(prior: list[dict[str, str]], current: list[dict[str, str]], performance_year: int) -> Backtest:
    # The prior year: each ACO's trend (published benchmark over everything but the trend), by BY3 cohort.
    trends: dict[str, tuple[int, Decimal]] = {}
    cohorts: dict[int, list[Decimal]] = {}
    naive_ratio: dict[str, tuple[int, Decimal]] = {}
    for raw in prior:
        row = _Row(raw)
        try:
            by3 = row.start_year - 1
            log_trend = (row.number("updatedbnchmk") / row.before_trend()).ln()
            naive_ratio[row.key] = (by3, row.number("updatedbnchmk") / row.number("histbnchmk"))
        except (RowError, ValueError, ArithmeticError):
            continue
        trends[row.key] = (by3, log_trend)
        cohorts.setdefault(by3, []).append(log_trend)
    if not cohorts:
        raise ValueError("prior file: no row with the benchmark columns (UpdatedBnchmk, HistBnchmk, by-type columns)")
    national = {b: _median(v) for b, v in cohorts.items()}
    newest = performance_year - 2  # agreements that began in the prior year: one year of trend
    if newest in national:
        one_year = national[newest]
    else:
        steps = [national[b] - national[b + 1] for b in national if b + 1 in national]
        one_year = _median(steps) if steps else D("0.03")
    naive_median = _median(r for _, r in naive_ratio.values())

    predictions: list[Prediction] = []
    skipped: list[tuple[str, str]] = []
    for raw in current:
        row = _Row(raw)
        try:
            published = row.number("updatedbnchmk")
            by3 = row.start_year - 1
            before = row.before_trend()
            hist = row.number("histbnchmk")
        except (RowError, ValueError, ArithmeticError) as exc:
            skipped.append((row.key, str(exc)))
            continue
        if by3 in national:
            log_trend = national[by3] + one_year
        else:
            log_trend = one_year * (performance_year - by3)
        prior_trend = trends.get(row.key)
        if prior_trend is not None and prior_trend[0] == by3 and by3 in national:
            log_trend += prior_trend[1] - national[by3]  # the ACO's own deviation, which persists
        own = naive_ratio.get(row.key)
        naive = hist * (own[1] if own is not None and own[0] == by3 else naive_median)
        predictions.append(Prediction(row.key, before * log_trend.exp(), published, naive))
    return Backtest(tuple(predictions), tuple(skipped), one_year.exp())


def percentile(values: list[Decimal], share: Decimal) -> Decimal:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
