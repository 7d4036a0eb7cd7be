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
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from acoflow.puf import Cell, Columns, RowError, normalise, read_cell, read_rows
from services.settlement.domain.benchmark import BenchmarkInputs, Trend, historical_by_type, updated_benchmark
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
    """Typed, case-insensitive access to one row's benchmark columns, cells read by the PUF reader's rules. What a
    row lacks (a suppressed or missing cell) is filled by a stated fallback, never by a weight it does not have;
    `notes` says which."""

    def __init__(self, row: dict[str, str]) -> None:
        self.values = {normalise(k): (v or "").strip() for k, v in row.items()}
        self.notes: list[str] = []

    def text(self, *names: str) -> str:
        for name in names:
            value = self.values.get(normalise(name), "")
            if value and read_cell_or_text(value):
                return value
        return ""

    def value(self, name: str) -> Decimal | None:
        try:
            return read_cell(self.values.get(normalise(name), "")).value
        except ValueError:
            raise RowError(f"{name}: {self.values.get(normalise(name))!r} is not a number") from None

    def number(self, name: str) -> Decimal:
        value = self.value(name)
        if value is None:
            raise RowError(f"{name}: empty, suppressed or missing")
        return value

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

    def by_type(self, pattern: str, index: int) -> dict[EnrollmentType, Decimal]:
        """The published value of each type (a suppressed or missing one left out)."""
        out = {}
        for t, stems in TYPE_STEMS.items():
            value = self.value(pattern.format(stems[index]))
            if value is not None:
                out[t] = value
        return out

    def person_years(self) -> dict[EnrollmentType, Decimal]:
        """The year's person-years by type. CMS suppresses a type with few beneficiaries: those types share what the
        total (N_AB_Year_PY) leaves after the published ones, in their BY3 proportions (else evenly), or get none."""
        years = self.by_type("n_ab_year_{}_py", 1)
        missing = [t for t in ENROLLMENT_TYPES if t not in years]
        if not years:
            raise RowError("N_AB_Year_<type>_PY: no person-years by enrollment type")
        if missing:
            total = self.value("n_ab_year_py")
            rest = max(total - sum(years.values()), D(0)) if total is not None else D(0)
            by3 = self.by_type("n_ab_year_{}_by3", 1)
            weights = {t: by3.get(t, D(0)) for t in missing}
            if sum(weights.values()) <= 0:
                weights = dict.fromkeys(missing, D(1))
            for t in missing:
                years[t] = rest * weights[t] / sum(weights.values())
            source = "N_AB_Year_PY less the published types" if total is not None else "none (N_AB_Year_PY not published)"
            self.notes.append(f"person-years of {', '.join(missing)} suppressed: {source}")
        return years

    def historical(self, hist: Decimal) -> dict[EnrollmentType, Decimal]:
        """Per-type historical benchmarks from the aggregate and the base years' spending by type. A suppressed
        base year takes the type's nearest published one; a type with none, or a file without them, takes the
        aggregate."""
        spent = [self.by_type(f"per_capita_exp_all_{{}}_by{i}", 0) for i in (1, 2, 3)]
        by3_years = self.by_type("n_ab_year_{}_by3", 1)
        base: dict[EnrollmentType, tuple[Decimal, Decimal, Decimal]] = {}
        for t in ENROLLMENT_TYPES:
            known = [s.get(t) for s in spent]
            if all(v is None for v in known):
                continue
            filled = [v if v is not None else next(x for x in (known[2], known[1], known[0]) if x is not None) for v in known]
            if None in known:
                self.notes.append(f"base-year spending of {t} suppressed in some year: the nearest published year")
            base[t] = (filled[0], filled[1], filled[2])
        if not base or sum(by3_years.get(t, D(0)) for t in base) <= 0:
            self.notes.append("no base-year spending by type: every type at the aggregate historical benchmark")
            return dict.fromkeys(ENROLLMENT_TYPES, hist)
        out = historical_by_type(hist, base, by3_years)
        for t in ENROLLMENT_TYPES:
            if t not in out:
                self.notes.append(f"no base-year spending of {t}: the aggregate historical benchmark")
                out[t] = hist
        return out

    def inputs(self) -> BenchmarkInputs:
        """The benchmark's inputs as far as the file gives them (a type without risk scores keeps a ratio of 1)."""
        risk_by3, risk_py = self.by_type("cms_hcc_riskscore_{}_by3", 0), self.by_type("cms_hcc_riskscore_{}_py", 0)
        unscored = [t for t in ENROLLMENT_TYPES if t not in risk_by3 or t not in risk_py]
        if unscored:
            self.notes.append(f"risk scores of {', '.join(unscored)} suppressed or missing: risk ratio 1")
        return BenchmarkInputs(
            historical=self.historical(self.number("histbnchmk")),
            risk_by3=risk_by3,
            risk_py=risk_py,
            person_years=self.person_years(),
            agreement_start_year=self.start_year,
            trend=Trend(national=D(1), acpt=D(1)),  # everything but the trend: the trend is estimated apart
        )

    def before_trend(self) -> Decimal:
        """The benchmark per capita with every step but the trend: historical, risk and the year's mix."""
        return updated_benchmark(self.inputs()).per_capita


def read_cell_or_text(value: str) -> bool:
    """Whether a cell holds something (text, or a number): not blank, suppressed or not applicable."""
    try:
        return read_cell(value).absent is None
    except ValueError:
        return True


@dataclass(frozen=True)
class Prediction:
    key: str
    predicted: Decimal
    published: Decimal
    naive: Decimal
    notes: tuple[str, ...] = ()  # the fallbacks taken for what the row does not publish

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
    unusable: Counter[str] = Counter()
    for raw in prior:
        row = _Row(raw)
        try:
            by3 = row.start_year - 1
            log_trend = (row.number("updatedbnchmk") / row.before_trend()).ln()
            naive_ratio[row.key] = (by3, row.number("updatedbnchmk") / row.number("histbnchmk"))
        except (RowError, ValueError, ArithmeticError) as exc:
            unusable[str(exc)] += 1
            continue
        trends[row.key] = (by3, log_trend)
        cohorts.setdefault(by3, []).append(log_trend)
    if not cohorts:
        why = unusable.most_common(1)[0][0] if unusable else "no rows"
        raise ValueError(f"prior year: no row gives its trend ({why})")
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
        predictions.append(Prediction(row.key, before * log_trend.exp(), published, naive, tuple(row.notes)))
    return Backtest(tuple(predictions), tuple(skipped), one_year.exp())


def percentile(values: list[Decimal], share: Decimal) -> Decimal:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# The goal of an in-year estimate, on every year pair: median and 90th-percentile absolute error, and the worst ACO.
GOAL_MEDIAN, GOAL_P90, GOAL_WORST = D("0.015"), D("0.035"), D("0.25")


@dataclass(frozen=True)
class YearSummary:
    performance_year: int
    acos: int
    predicted: int
    median: Decimal
    p90: Decimal
    worst: Prediction
    with_fallbacks: int  # ACOs predicted with a stated fallback for a suppressed or missing cell
    national_one_year: Decimal
    # Why a year misses: the median signed error is the national growth the prior file could not give (shared by
    # every ACO); the median and p90 once it is divided out are what the ACO-level estimate misses. A diagnosis
    # from the published values, never a prediction.
    national_miss: Decimal
    median_given_national: Decimal
    p90_given_national: Decimal

    @property
    def meets_goal(self) -> bool:
        return self.median <= GOAL_MEDIAN and self.p90 <= GOAL_P90 and self.worst.error <= GOAL_WORST


def summarize(result: Backtest, performance_year: int, acos: int) -> YearSummary:
    errors = [p.error for p in result.predictions]
    ratios = [p.predicted / p.published for p in result.predictions]
    common = _median(ratios)
    residual = [abs(r / common - 1) for r in ratios]
    return YearSummary(
        performance_year,
        acos,
        len(errors),
        _median(errors),
        percentile(errors, D("0.9")),
        max(result.predictions, key=lambda p: p.error),
        sum(1 for p in result.predictions if p.notes),
        result.national_one_year,
        common - 1,
        _median(residual),
        percentile(residual, D("0.9")),
    )


def rows_by_year(paths: Iterable[Path]) -> dict[int, list[dict[str, str]]]:
    """Every file's rows by performance year: a multi-year file by its year column, CMS's yearly files (no year
    column) by the year in their name (Performance_Year_..._2022.csv)."""
    out: dict[int, list[dict[str, str]]] = {}
    for path in paths:
        rows = read_rows(path)
        if not rows:
            continue
        columns = Columns(rows[0].keys())
        if columns.fields.get("performance_year") is None:
            years = re.findall(r"(?<!\d)(20\d\d)(?!\d)", path.name)
            if not years:
                raise ValueError(f"{path.name}: no year column and no year in the file name")
            out.setdefault(int(years[-1]), []).extend(rows)
            continue
        for row in rows:
            value = Cell(columns, row).number("performance_year")
            if value is not None:
                out.setdefault(int(value), []).append(row)
    return out


def every_pair(by_year: dict[int, list[dict[str, str]]]) -> list[tuple[YearSummary | None, int, str]]:
    """The backtest of each year whose prior year is at hand: (summary, year, why not) in year order."""
    out: list[tuple[YearSummary | None, int, str]] = []
    for year in sorted(y for y in by_year if y - 1 in by_year):
        try:
            result = backtest(by_year[year - 1], by_year[year], year)
        except ValueError as exc:
            out.append((None, year, str(exc)))
            continue
        if not result.predictions:
            reason = result.skipped[0][1] if result.skipped else "no row"
            out.append((None, year, f"no ACO could be predicted ({reason})"))
            continue
        out.append((summarize(result, year, len(by_year[year])), year, ""))
    return out
