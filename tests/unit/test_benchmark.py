"""The performance-year benchmark, step by step from the rule text (METHODOLOGY.md section 6), what CMS's PUF
confirms of it, and the in-year estimate's backtest on CMS's published benchmarks."""

from __future__ import annotations

import csv
import statistics
from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner

from acoflow.benchmark_backtest import backtest, percentile, rows_of_year
from acoflow.cli import main
from services.settlement.domain.benchmark import BenchmarkInputs, Trend, historical_by_type, updated_benchmark

CMS_COLUMNS = Path(__file__).resolve().parents[3] / "shared" / "data" / "mssp_puf" / "mssp_cms_columns_2013_2021.csv"


def inputs(**kw: object) -> BenchmarkInputs:
    base: dict[str, object] = {
        "historical": {"aged_nondual": D("10000"), "esrd": D("80000")},
        "risk_by3": {"aged_nondual": D("1.00"), "esrd": D("1.00")},
        "risk_py": {"aged_nondual": D("1.05"), "esrd": D("0.98")},
        "person_years": {"aged_nondual": D("900"), "esrd": D("100")},
        "agreement_start_year": 2022,
        "trend": Trend(national=D("1.04")),
    }
    base.update(kw)
    return BenchmarkInputs(**base)  # type: ignore[arg-type]


def test_risk_growth_capped_at_3_percent_for_agreements_from_2019_and_falls_in_full() -> None:
    b = updated_benchmark(inputs())
    aged, esrd = (s for s in b.steps if s.enrollment_type == "aged_nondual"), (s for s in b.steps if s.enrollment_type == "esrd")
    a, e = next(aged), next(esrd)
    assert a.risk_ratio == D("1.05") and a.capped_risk_ratio == D("1.03")
    assert e.capped_risk_ratio == D("0.98")  # a fall is never capped
    # 10,000 x 1.03 x 1.04 = 10,712; 80,000 x 0.98 x 1.04 = 81,536; weighted 900:100.
    assert a.updated == D("10712.0000") and e.updated == D("81536.0000")
    assert b.per_capita == (D("10712") * 900 + D("81536") * 100) / 1000
    old = updated_benchmark(inputs(agreement_start_year=2017))
    assert next(s for s in old.steps if s.enrollment_type == "aged_nondual").capped_risk_ratio == D("1.05")


def test_update_blends_regional_and_national_growth_and_the_acpt_by_agreement() -> None:
    trend = Trend(national=D("1.04"), regional={"aged_nondual": D("1.06")}, national_weight=D("0.25"), acpt=D("1.03"))
    # 2022 agreement: 0.75 x 1.06 + 0.25 x 1.04 = 1.055 (no ACPT).
    step = updated_benchmark(inputs(trend=trend)).steps[1]
    assert step.enrollment_type == "aged_nondual" and step.update_factor == D("1.0550")
    # 2024 agreement: two thirds of that blend, one third the ACPT.
    blended = updated_benchmark(inputs(trend=trend, agreement_start_year=2024))
    assert blended.acpt_weight == D(1) / 3
    assert abs(blended.steps[1].update_factor - (D("1.055") * 2 / 3 + D("1.03") / 3)) < D("1e-20")
    with pytest.raises(ValueError, match=r"trend\.acpt"):
        updated_benchmark(inputs(agreement_start_year=2024))


def test_every_step_is_explained_and_an_unpriced_type_is_named() -> None:
    lines = updated_benchmark(inputs()).explanation()
    assert any("esrd: historical 80,000.00 x risk 0.9800" in x for x in lines)
    assert "capped to 1.0300" in lines[1] and lines[-1].startswith("updated benchmark per capita")
    with pytest.raises(ValueError, match=r"historical\.disabled"):
        updated_benchmark(inputs(person_years={"disabled": D(10)}))


def test_historical_by_type_shares_the_aggregate_in_proportion_to_weighted_base_years() -> None:
    base = {"aged_nondual": (D(9000), D(9500), D(10000)), "esrd": (D(70000), D(75000), D(80000))}
    by_type = historical_by_type(D("12000"), base, {"aged_nondual": D(900), "esrd": D(100)})  # type: ignore[arg-type]
    # Weighted 10/30/60: 9,750 and 77,500; at the BY3 mix they average 16,525, which the aggregate replaces.
    assert by_type["aged_nondual"] == D("12000") * D("9750") / D("16525")
    assert (by_type["aged_nondual"] * 900 + by_type["esrd"] * 100) / 1000 == D("12000")


def _cms_rows(year: str) -> list[dict[str, str]]:
    with CMS_COLUMNS.open(newline="") as handle:
        return [r for r in csv.DictReader(handle) if r["performance_year"] == year]


@pytest.mark.parametrize("year", ["2016.0", "2017.0", "2018.0", "2019.0", "2020.0", "2021.0"])
def test_the_puf_total_benchmark_is_per_capita_times_person_years(year: str) -> None:
    shares = []
    for r in _cms_rows(year):
        if r["updatedbnchmk"] and r["n_ab_year_py"]:
            shares.append(D(r["abtotbnchmk"]) / (D(r["updatedbnchmk"]) * D(r["n_ab_year_py"])))
    exact = [s for s in shares if abs(s - 1) < D("0.0002") or abs(s - D("0.5")) < D("0.0002")]
    # Half for the six-month 2019 periods (42 CFR 425.609); one row a year at most is off.
    assert len(shares) - len(exact) <= 2 and len(shares) > 400


@pytest.mark.parametrize("year", ["2017.0", "2018.0", "2019.0"])
def test_the_puf_historical_benchmark_is_the_weighted_base_years_trended(year: str) -> None:
    ratios = []
    for r in _cms_rows(year):
        stems = (("esrd", "esrd"), ("dis", "dis"), ("agdu", "aged_dual"), ("agnd", "aged_nondual"))
        mix = {s: D(r[f"n_ab_year_{p}_by3"]) for s, p in stems}
        base = sum(
            (D("0.1") * D(r[f"per_capita_exp_all_{s}_by1"]) + D("0.3") * D(r[f"per_capita_exp_all_{s}_by2"])
             + D("0.6") * D(r[f"per_capita_exp_all_{s}_by3"])) * mix[s]
            for s, _ in stems
        ) / sum(mix.values())  # fmt: skip
        ratios.append(D(r["histbnchmk"]) / base)
    # Trending BY1 and BY2 to BY3 dollars raises it a few percent, nearly alike across a year's ACOs; the regional
    # adjustment of agreements from 2017 moves some further.
    assert D("1.0") < D(statistics.median(ratios)) < D("1.03")
    assert percentile([abs(x - D(statistics.median(ratios))) for x in ratios], D("0.9")) < D("0.04")


@pytest.mark.parametrize("year", [2018, 2019])
def test_backtest_beats_the_naive_estimate_within_the_targets(year: int) -> None:
    result = backtest(rows_of_year(CMS_COLUMNS, year - 1), rows_of_year(CMS_COLUMNS, year), year)
    errors = [p.error for p in result.predictions]
    naive = [p.naive_error for p in result.predictions]
    assert len(errors) > 450 and not result.skipped
    assert D(statistics.median(errors)) <= D("0.015") and percentile(errors, D("0.9")) <= D("0.035")
    assert statistics.median(errors) < statistics.median(naive) and percentile(errors, D("0.9")) < percentile(naive, D("0.9"))


def test_backtest_command_prints_the_figures() -> None:
    args = ["--prior", str(CMS_COLUMNS), "--prior-year", "2018", "--current", str(CMS_COLUMNS), "--performance-year", "2019"]
    run = CliRunner().invoke(main, ["benchmark", "backtest", *args, "--worst", "3"])
    assert run.exit_code == 0, run.output
    assert "median_abs_pct_error=1.07 p90_abs_pct_error=3.12" in run.output
    assert "naive_median_abs_pct_error=" in run.output and run.output.count("  worst ") == 3


PY2022 = CMS_COLUMNS.parent / "cms_files" / "Performance_Year_Financial_and_Quality_Results_2022.csv"


def test_a_suppressed_cell_never_becomes_a_weight() -> None:
    from acoflow.benchmark_backtest import _Row

    row = next(r for r in _cms_rows("2021.0") if r["n_ab_year_esrd_py"] and r["n_ab_year_aged_dual_py"])
    total = D(row["n_ab_year_py"])
    suppressed = _Row({**row, "n_ab_year_esrd_py": "*"})
    years = suppressed.person_years()
    # The suppressed type takes what the total leaves after the published types, and the row says so.
    assert sum(years.values()) == total and years["esrd"] == total - sum(
        D(row[f"n_ab_year_{t}_py"]) for t in ("dis", "aged_dual", "aged_nondual")
    )
    assert suppressed.notes == ["person-years of esrd suppressed: N_AB_Year_PY less the published types"]
    plain = _Row(row).before_trend()
    assert abs(suppressed.before_trend() / plain - 1) < D("0.001")
    # Without a total, the suppressed type weighs nothing (it had under 11 beneficiaries), never a quarter.
    alone = _Row({**row, "n_ab_year_esrd_py": "*", "n_ab_year_py": "*"})
    assert alone.person_years()["esrd"] == 0 and abs(alone.before_trend() / plain - 1) < D("0.05")


def test_py2022_from_py2021_meets_the_goal_with_suppressed_person_years() -> None:
    from acoflow.benchmark_backtest import read_rows, summarize

    current = read_rows(PY2022)
    result = backtest(rows_of_year(CMS_COLUMNS, 2021), current, 2022)
    summary = summarize(result, 2022, len(current))
    assert summary.predicted == 482 and summary.with_fallbacks >= 17  # 17 ACOs have N_AB_Year_AGED_Dual_PY suppressed
    assert summary.meets_goal, summary


def test_py2017_misses_on_the_national_growth_alone() -> None:
    """PY2017's miss is the growth every ACO shares, which the PY2016 file cannot give; divided out, the
    ACO-level estimate is within the goal."""
    from acoflow.benchmark_backtest import GOAL_MEDIAN, GOAL_P90, summarize

    current = rows_of_year(CMS_COLUMNS, 2017)
    summary = summarize(backtest(rows_of_year(CMS_COLUMNS, 2016), current, 2017), 2017, len(current))
    assert not summary.meets_goal
    assert summary.national_miss < D("-0.02") and summary.national_one_year < D("1.01")
    assert summary.median_given_national <= GOAL_MEDIAN and summary.p90_given_national <= GOAL_P90


def test_backtest_years_prints_every_pair_and_why_a_year_cannot_be_predicted() -> None:
    run = CliRunner().invoke(main, ["benchmark", "backtest-years", str(CMS_COLUMNS), str(PY2022)])
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert lines[0].startswith("PY2014 from PY2013: not predicted: prior year: no row gives its trend (Current_Start_Date")
    assert [line.split(":")[0] for line in lines] == [f"PY{y} from PY{y - 1}" for y in range(2014, 2023)]
    assert "PY2019 from PY2018: acos=475 predicted=475 median=1.07% p90=3.12%" in run.output
    assert "goal=met national_miss=" in lines[-1] and "fallbacks=" in lines[-1]


def _position_with(update: dict[str, object] | None, scenario: str = "expected") -> object:
    from services.settlement.domain.position import project
    from tests.terms import mssp_terms
    from tests.unit.test_position_and_attribution import inputs as position_inputs

    terms = mssp_terms(
        completion_factors=(D("0.5"), D("0.8")),
        **({} if update is None else {"benchmark_per_capita": None, "benchmark_update": update}),
        benchmark_trend_scenario=scenario,
    )
    return project(position_inputs(terms=terms))


UPDATE: dict[str, object] = {
    "historical": {"aged_nondual": "11000"},
    "risk_by3": {"aged_nondual": "1.00"},
    "risk_py": {"aged_nondual": "1.02"},
    "agreement_start_year": 2023,
    "national_growth": "1.05",
    "national_growth_low": "1.02",
    "national_growth_high": "1.08",
}


def test_a_contract_settles_against_the_projected_updated_benchmark_with_its_uncertainty() -> None:
    fixed = _position_with(None)
    updated = _position_with(UPDATE)
    # 100 members for 12 months: 11,000 x 1.02 x 1.05 = 11,781 a year each.
    assert updated.benchmark_total == D("1178100.00")  # type: ignore[attr-defined]
    assert any("historical 11,000.00 x risk 1.0200" in n for n in updated.explanation)  # type: ignore[attr-defined]
    assert any("benchmark uncertainty" in n for n in updated.explanation)  # type: ignore[attr-defined]
    low = _position_with(UPDATE, "low")
    assert low.benchmark_total == D("1144440.00")  # type: ignore[attr-defined]  # 11,000 x 1.02 x 1.02 x 100
    # The trend's spread pulls the chance of clearing the MSR towards even, against a benchmark known exactly.
    certain = _position_with({**UPDATE, "national_growth_low": None, "national_growth_high": None})
    assert fixed.benchmark_total == D("1200000.00")  # type: ignore[attr-defined]
    assert abs(updated.probability_clears_msr - D("0.5")) < abs(certain.probability_clears_msr - D("0.5"))  # type: ignore[attr-defined]


def test_a_missing_benchmark_input_gives_a_position_that_says_which() -> None:
    p = _position_with({**UPDATE, "agreement_start_year": 2024})  # blends in the ACPT, which is not given
    assert p.settlement.gate == "cannot_settle"  # type: ignore[attr-defined]
    assert "benchmark_update.trend.acpt" in p.explanation[-1]  # type: ignore[attr-defined]
