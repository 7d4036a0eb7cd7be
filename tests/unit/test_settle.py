"""The settlement math against CMS's published results and the methodology's rules."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from acoflow.cli import main
from acoflow.puf import OUTPUT_COLUMN, read_rows, settle_rows
from services.settlement.domain.settle import SettlementError, SettlementInputs, corridor_amount, one_sided_msr, settle
from shared.terms import CorridorBand

PUF = Path(__file__).parent.parent / "fixtures" / "mssp_puf" / "mssp_puf_2013_2018.csv"


def mssp(**kw: object) -> SettlementInputs:
    base: dict[str, object] = {
        "program": "MSSP",
        "track": "T1",
        "performance_year": 2018,
        "assigned_beneficiaries": 20_000,
        "benchmark_total": D("200000000"),
        "expenditure_total": D("190000000"),
        "quality_score": D(1),
    }
    base.update(kw)
    return SettlementInputs(**base)  # type: ignore[arg-type]


def test_puf_rows_reproduced_from_inputs_only() -> None:
    results = list(settle_rows(read_rows(PUF)))
    assert len(results) == 2397
    assert not [r for r in results if r.error]
    misses = [r for r in results if not r.within(D(1), D("0.001"))]
    # Every miss is a row whose published sharing rate is 0 though its inputs carry no failing signal
    # (see tests/fixtures/mssp_puf/README.md); every other row matches.
    for r in misses:
        assert D(r.row["final_sharing_rate"]) == 0, r.line
        assert r.settlement is not None and r.settlement.final_sharing_rate > 0
    assert len(misses) <= 3
    assert (len(results) - len(misses)) / len(results) >= D("0.998")
    exact_years = [r for r in results if r.row["performance_year"] in ("2013", "2014") and r not in misses]
    assert all(r.within(D(1)) for r in exact_years)  # PY2013-14 publish full-precision quality scores


def test_msr_table_matches_every_published_one_sided_row_with_5000_or_more() -> None:
    rows = [r for r in read_rows(PUF) if r["track"] == "T1" and float(r["assigned_beneficiaries"]) >= 5000]
    assert len(rows) > 1500
    for r in rows:
        computed = one_sided_msr(int(float(r["assigned_beneficiaries"])))
        # PY2015+ publish the MSR to 4 places
        assert abs(computed - D(r["min_savings_rate"])) <= D("0.0000500001"), r["aco"]


def test_msr_below_5000_must_be_given() -> None:
    with pytest.raises(SettlementError, match="msr"):
        settle(mssp(assigned_beneficiaries=4000, msr=None))


def test_settle_puf_command_writes_every_input_column_plus_the_computed_one(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["settle-puf", str(PUF), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rows: 2397" in result.output
    assert "within 0.1% (or $1): 2394/2397" in result.output
    header = out.read_text().splitlines()[0].split(",")
    assert header[-1] == OUTPUT_COLUMN and "benchmark_total" in header


def test_settle_puf_handles_years_and_tracks_not_in_the_file(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(
        "performance_year,track,assigned_beneficiaries,benchmark_total,expenditure_total,min_savings_rate,"
        "quality_score,met_quality_standard,euc_loss_adjustment,revenue_based_loss_limit\n"
        "2023,BE,12000,150000000,160000000,0.02,0.9,1,0,0\n"
        "2020,EN,30000,300000000,330000000,0.01,0.95,1,0,0\n"
        "2022,BA,8000,80000000,74000000,,0.8,1,,\n"
    )
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["settle-puf", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    values = [line.rsplit(",", 1)[1] for line in out.read_text().splitlines()[1:]]
    # BASIC E PY2023: 30% of a 10M loss = 3M, capped at 4% of benchmark = 6M: owes 3M.
    # ENHANCED PY2020: all two-sided losses offset to zero by the EUC policy.
    # BASIC A PY2022: 7.5% savings > MSR; 40% * 6M * (1 - 2%) = 2,352,000.
    assert values == ["-3000000.00", "0.00", "2352000.00"]


def test_track3_loss_rate_floor_and_quality_failure_ceiling() -> None:
    # Catholic Medical Partners PY2016 (published -2,532,113): 1 - 0.7226 < 40% floor.
    r = settle(
        mssp(
            track="T3",
            performance_year=2016,
            assigned_beneficiaries=21136,
            benchmark_total=D("192077909"),
            expenditure_total=D("198408192"),
            msr=D("0.005"),
            quality_score=D("0.9635"),
        )
    )
    assert r.loss_sharing_rate == D("0.40") and r.earned == D("-2532113.20")
    failed = settle(
        mssp(
            track="T3",
            performance_year=2018,
            assigned_beneficiaries=6003,
            benchmark_total=D("86448539"),
            expenditure_total=D("89276593"),
            msr=D("0.01"),
            quality_score=D("0.4545"),
            quality_standard="not_met",
            euc_loss_adjustment=D(-2797),
        )
    )
    assert failed.loss_sharing_rate == D("0.75") and failed.earned == D("-2118243.50")  # published -2,118,244


def test_savings_cap_applies_after_sequestration() -> None:
    r = settle(mssp(expenditure_total=D("100000000")))  # 50% savings
    assert r.earned == D("20000000.00")  # 10% of benchmark, not 50% * 50% * 98%
    assert "savings cap" in " ".join(r.explanation)


def test_sequestration_by_year() -> None:
    gross = D("10000000")
    assert settle(mssp(performance_year=2019, track="BA")).earned == gross * D("0.4")
    assert settle(mssp(performance_year=2018)).earned == gross * D("0.5") * D("0.98")


def test_revenue_based_loss_cap_binds_below_benchmark_cap() -> None:
    r = settle(
        mssp(track="BE", performance_year=2024, msr=D("0.0"), expenditure_total=D("260000000"), participant_revenue=D("20000000"))
    )
    assert r.loss_cap_amount == D("1600000") and r.earned == D("-1600000.00")


def test_reach_corridors_are_marginal() -> None:
    bands = (
        CorridorBand(upper=D("0.05"), share=D("0.5")),
        CorridorBand(upper=D("0.10"), share=D("0.35")),
        CorridorBand(upper=None, share=D("0.05")),
    )
    # 12% of a 100 benchmark: 5 * 0.5 + 5 * 0.35 + 2 * 0.05 = 4.35
    assert corridor_amount(D(12), D(100), bands) == D("4.35")
    assert corridor_amount(D(-3), D(100), bands) == D("-1.5")


def test_reach_global_discount_and_withhold() -> None:
    r = settle(
        SettlementInputs(
            program="REACH",
            track="GLOBAL",
            performance_year=2024,
            assigned_beneficiaries=10000,
            benchmark_total=D("100000000"),
            expenditure_total=D("90000000"),
            quality_score=D("0.5"),
        )
    )
    # 3% discount -> 97M; 2% withheld (1.94M), half earned back -> 96.03M; gross 6.03M all kept (<25%),
    # then sequestered like every Medicare savings payment: 6.03M * 0.98.
    assert r.benchmark_total == D("96030000.00") and r.earned == D("5909400.00")
    assert r.sequestration == D("0.02")


@settings(max_examples=300, deadline=None)
@given(
    track=st.sampled_from(["T1", "T1P", "T2", "T3", "BA", "BC", "BD", "BE", "EN"]),
    year=st.integers(2019, 2030),
    bench=st.decimals(min_value=D("1000000"), max_value=D("1000000000"), places=2),
    ratio=st.decimals(min_value=D("0.5"), max_value=D("1.5"), places=4),
    msr=st.sampled_from([D(0), D("0.005"), D("0.01"), D("0.02")]),
    quality=st.decimals(min_value=D(0), max_value=D(1), places=4),
)
def test_caps_gates_and_monotonicity(track: str, year: int, bench: D, ratio: D, msr: D, quality: D) -> None:
    if track in ("T1P",) and year < 2018:
        return
    exp = (bench * ratio).quantize(D("0.01"))
    inputs = mssp(
        track=track, performance_year=year, benchmark_total=bench, expenditure_total=exp, msr=msr, quality_score=quality
    )
    r = settle(inputs)
    if r.savings_cap_amount is not None:
        assert r.earned <= r.savings_cap_amount + D("0.005")
    if r.loss_cap_amount is not None:
        assert r.earned >= -r.loss_cap_amount - D("0.005")
    if -msr < r.savings_rate < msr:
        assert r.earned == 0  # nothing inside the band
    if r.gate == "savings":
        assert r.earned > 0
    more = settle(
        mssp(
            track=track,
            performance_year=year,
            benchmark_total=bench,
            expenditure_total=exp + bench / 100,
            msr=msr,
            quality_score=quality,
        )
    )
    assert more.earned <= r.earned  # spending more never earns more


@settings(max_examples=100, deadline=None)
@given(rate=st.decimals(min_value=D("0.0201"), max_value=D("0.09"), places=4))
def test_first_dollar_sharing_past_the_msr(rate: D) -> None:
    bench = D("100000000")
    r = settle(
        mssp(track="BA", performance_year=2022, benchmark_total=bench, expenditure_total=bench * (1 - rate), msr=D("0.02"))
    )
    assert r.earned == (bench * rate * D("0.4") * D("0.98")).quantize(D("0.01"))


def test_reach_global_py2026_narrows_the_first_corridor_band() -> None:
    def earned(year: int) -> D:
        return settle(
            SettlementInputs(
                program="REACH",
                track="GLOBAL",
                performance_year=year,
                assigned_beneficiaries=10000,
                benchmark_total=D("100000000"),
                expenditure_total=D("70000000"),
                quality_score=D("1"),
            )
        ).earned

    # 4% discount -> 96M (withhold earned back in full); gross savings 26M = 27.1% of the benchmark.
    # PY2026: 10% band (9.6M) kept whole, the rest (16.4M) at 50% -> 17.8M. PY2025: 25% band (24M) whole, 2M at 50%.
    # Both sequestered at 2%.
    assert earned(2026) == D("17444000.00")
    assert earned(2025) == D("24500000.00")


@pytest.mark.parametrize(
    ("standard", "expenditure", "rate", "earned"),
    [
        ("met", "90000000", D("0.75"), D("7350000.00")),  # 10M * 75% * (1 - 2% sequestration)
        ("alternative", "90000000", D("0.45"), D("4410000.00")),  # sliding scale: 75% * 0.6
        ("not_met", "90000000", D("0"), D("0.00")),
        ("met", "110000000", D("0.75"), D("-5500000.00")),  # loss rate 1 - 0.75 * 0.6 = 55%
        ("alternative", "110000000", D("0.45"), D("-5500000.00")),
        ("not_met", "110000000", D("0"), D("-7500000.00")),  # neither standard: 75%
    ],
)
def test_py2023_quality_standards_for_enhanced(standard: str, expenditure: str, rate: D, earned: D) -> None:
    r = settle(
        SettlementInputs(
            program="MSSP",
            track="EN",
            performance_year=2024,
            assigned_beneficiaries=20000,
            benchmark_total=D("100000000"),
            expenditure_total=D(expenditure),
            msr=D("0.02"),
            mlr=D("0.02"),
            quality_score=D("0.6"),
            quality_standard=standard,  # type: ignore[arg-type]
        )
    )
    assert r.final_sharing_rate == rate and r.earned == earned
