"""`acoflow`: Checks against CMS's files: the benchmark backtest and settle-puf."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import click


@click.group()
def benchmark() -> None:
    """The performance-year benchmark: estimates and their check against CMS's results."""


@benchmark.command("backtest")
@click.option("--prior", "prior_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prior-year", required=True, type=int)
@click.option("--current", "current_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--performance-year", required=True, type=int)
@click.option("--worst", default=10, show_default=True, help="how many of the largest misses to list")
def benchmark_backtest(prior_path: Path, prior_year: int, current_path: Path, performance_year: int, worst: int) -> None:
    """Predict each ACO's UpdatedBnchmk for the performance year from the prior year's results PUF and what an
    ACO knows during the year; score against the published one and against the naive estimate (HistBnchmk x
    the prior year's trend). Files are CMS's (one year, no year column) or multi-year with a year column."""
    from acoflow.benchmark_backtest import backtest, percentile, rows_of_year

    prior = rows_of_year(prior_path, prior_year)
    current = rows_of_year(current_path, performance_year)
    if not prior or not current:
        raise click.UsageError(f"no rows: prior {prior_year} has {len(prior)}, current {performance_year} has {len(current)}")
    try:
        result = backtest(prior, current, performance_year)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if not result.predictions:
        raise click.ClickException("no ACO of the current file has the columns the estimate needs")
    errors = [p.error * 100 for p in result.predictions]
    naive = [p.naive_error * 100 for p in result.predictions]
    hundredth = Decimal("0.01")
    click.echo(f"performance_year={performance_year} prior_year={prior_year} acos={len(current)} predicted={len(errors)}")
    click.echo(f"national_one_year_trend={result.national_one_year.quantize(Decimal('0.0001'))}")
    click.echo(
        f"median_abs_pct_error={statistics.median(errors).quantize(hundredth)}"
        f" p90_abs_pct_error={percentile(errors, Decimal('0.9')).quantize(hundredth)}"
    )
    click.echo(
        f"naive_median_abs_pct_error={statistics.median(naive).quantize(hundredth)}"
        f" naive_p90_abs_pct_error={percentile(naive, Decimal('0.9')).quantize(hundredth)}"
    )
    for p in sorted(result.predictions, key=lambda p: -p.error)[:worst]:
        click.echo(f"  worst {p.key}: predicted {p.predicted:,.0f} published {p.published:,.0f} ({p.error * 100:.2f}%)")
    for key, why in result.skipped[:worst]:
        click.echo(f"  not predicted {key or '(no id)'}: {why}")


@benchmark.command("backtest-years")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def benchmark_backtest_years(paths: tuple[Path, ...]) -> None:
    """The backtest of every year whose prior year the files hold, one line a year: the error's median and 90th
    percentile, the worst ACO, how many ACOs needed a fallback for a suppressed cell, and whether the goal (median
    <= 1.5%, p90 <= 3.5%, no ACO beyond 25%) is met; then the national growth the prior year could not give (the
    median signed error) and the error left once it is divided out. Multi-year files by their year column, CMS's yearly files by
    the year in their name."""
    from acoflow.benchmark_backtest import every_pair, rows_by_year

    try:
        pairs = every_pair(rows_by_year(paths))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    hundredth = Decimal("0.01")
    for summary, year, why in pairs:
        if summary is None:
            click.echo(f"PY{year} from PY{year - 1}: not predicted: {why}")
            continue
        worst = summary.worst
        click.echo(
            f"PY{year} from PY{year - 1}: acos={summary.acos} predicted={summary.predicted}"
            f" median={(summary.median * 100).quantize(hundredth)}% p90={(summary.p90 * 100).quantize(hundredth)}%"
            f" worst={worst.key} {(worst.error * 100).quantize(hundredth)}% (predicted {worst.predicted:,.0f}, published"
            f" {worst.published:,.0f}) fallbacks={summary.with_fallbacks}"
            f" national_one_year={summary.national_one_year.quantize(Decimal('0.0001'))}"
            f" goal={'met' if summary.meets_goal else 'not met'}"
            f" national_miss={(summary.national_miss * 100).quantize(hundredth)}%"
            f" given_national: median={(summary.median_given_national * 100).quantize(hundredth)}%"
            f" p90={(summary.p90_given_national * 100).quantize(hundredth)}%"
        )


@click.command("settle-puf")
@click.argument("input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--performance-year", type=int, default=None, help="the year of a CMS file that has no year column")
def settle_puf(input_path: Path, output: Path, performance_year: int | None) -> None:
    """Settle MSSP results PUF rows (our format or CMS's file as downloaded) from their inputs; compare with
    the published earned savings/losses where present and explain every miss."""
    from acoflow.puf import cell_rules, explain_miss, read_rows, settle_rows, write_results

    started = time.perf_counter()
    rows = read_rows(input_path)
    results = list(settle_rows(rows, performance_year))
    elapsed = time.perf_counter() - started
    write_results(output, list(rows[0].keys()) if rows else [], results)
    click.echo(f"rows: {len(results)}  settled in {elapsed:.3f} s ({len(results) / max(elapsed, 1e-9):,.0f} rows/s)")
    for column, counts in cell_rules(rows).items():
        click.echo(f"  {column}: " + ", ".join(f"{rule} {n}" for rule, n in counts.most_common()))
    compared = [r for r in results if r.published is not None]
    if compared:
        dollar = sum(r.within(Decimal(1)) for r in compared)
        share = sum(r.within(Decimal(1), Decimal("0.001")) for r in compared)
        click.echo(f"within $1: {dollar}/{len(compared)} ({dollar / len(compared):.2%})")
        click.echo(f"within 0.1% (or $1): {share}/{len(compared)} ({share / len(compared):.2%})")
        for year in sorted({r.year for r in compared if r.year is not None}):
            of_year = [r for r in compared if r.year == year]
            ok = sum(r.within(Decimal(1), Decimal("0.001")) for r in of_year)
            click.echo(f"  PY{year}: {ok}/{len(of_year)} within 0.1% ({ok / len(of_year):.2%})")
    _print_misses([r for r in compared if not r.within(Decimal(1), Decimal("0.001"))], explain_miss)
    unsettled = Counter(r.error for r in results if r.error and r.published is None)
    for error, n in unsettled.most_common():
        click.echo(f"  not settled, no published figure ({n} rows): {error}")


def _print_misses(misses: list[Any], explain: Callable[[Any], str]) -> None:
    """Each miss with its cause; rows that could not be settled at all, grouped by the reason."""
    errors = Counter(r.error for r in misses if r.error)
    for error, n in errors.most_common():
        years = sorted({r.year for r in misses if r.error == error and r.year is not None})
        click.echo(f"  not settled ({n} rows, PY{'/'.join(map(str, years))}): {error}")
    for r in (r for r in misses if not r.error):
        gate = r.settlement and r.settlement.gate
        click.echo(f"  miss line {r.line}: PY{r.year} published {r.published} computed {r.computed} ({gate}): {explain(r)}")
