"""Program parameters as data: one row per program / track / range of performance years.

Every figure the methodology gives lives here and nowhere else; a contract's own terms override them.
`PARAMETERS_VERSION` changes whenever a row does, and every settlement names the version it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from shared.terms import CorridorBand

PARAMETERS_VERSION: Final = "2026.11.1"

D = Decimal
LossRateRule = Literal["none", "fixed", "one_minus_sharing"]


@dataclass(frozen=True)
class TrackParameters:
    program: str
    tracks: frozenset[str]
    first_year: int
    last_year: int | None
    two_sided: bool
    max_sharing_rate: Decimal
    savings_cap: Decimal  # fraction of total benchmark, applied after sequestration
    loss_rate_rule: LossRateRule = "none"
    loss_rate: Decimal = D(0)  # the fixed rate, when loss_rate_rule == "fixed"
    loss_rate_floor: Decimal = D(0)
    loss_rate_ceiling: Decimal = D(1)
    # Loss cap as a fraction of benchmark, by year of two-sided risk (the last entry repeats).
    loss_cap_benchmark: tuple[Decimal, ...] = ()
    # Revenue-based loss cap: fraction of ACO participant revenue, itself capped by loss_cap_benchmark.
    loss_cap_revenue: Decimal | None = None
    # PY2023+: ENHANCED loss rate = 1 - max_sharing_rate * quality score (within floor and ceiling).
    quality_scaled_loss_from: int | None = None

    def covers(self, program: str, track: str, year: int) -> bool:
        return (
            self.program == program
            and track in self.tracks
            and self.first_year <= year
            and (self.last_year is None or year <= self.last_year)
        )


TRACK_PARAMETERS: Final[tuple[TrackParameters, ...]] = (
    TrackParameters("MSSP", frozenset({"T1"}), 2012, None, False, D("0.5"), D("0.10")),
    TrackParameters("MSSP", frozenset({"BA", "BB"}), 2019, None, False, D("0.4"), D("0.10")),
    TrackParameters(
        "MSSP",
        frozenset({"T1P"}),
        2018,
        None,
        True,
        D("0.5"),
        D("0.10"),
        loss_rate_rule="fixed",
        loss_rate=D("0.30"),
        loss_cap_benchmark=(D("0.04"),),
        loss_cap_revenue=D("0.08"),
    ),
    TrackParameters(
        "MSSP",
        frozenset({"T2"}),
        2012,
        None,
        True,
        D("0.6"),
        D("0.15"),
        loss_rate_rule="one_minus_sharing",
        loss_rate_floor=D("0.40"),
        loss_rate_ceiling=D("0.60"),
        loss_cap_benchmark=(D("0.05"), D("0.075"), D("0.10")),
    ),
    TrackParameters(
        "MSSP",
        frozenset({"T3", "EN"}),
        2016,
        None,
        True,
        D("0.75"),
        D("0.20"),
        loss_rate_rule="one_minus_sharing",
        loss_rate_floor=D("0.40"),
        loss_rate_ceiling=D("0.75"),
        loss_cap_benchmark=(D("0.15"),),
        quality_scaled_loss_from=2023,
    ),
    TrackParameters(
        "MSSP",
        frozenset({"BC"}),
        2019,
        None,
        True,
        D("0.5"),
        D("0.10"),
        loss_rate_rule="fixed",
        loss_rate=D("0.30"),
        loss_cap_benchmark=(D("0.01"),),
        loss_cap_revenue=D("0.02"),
    ),
    TrackParameters(
        "MSSP",
        frozenset({"BD"}),
        2019,
        None,
        True,
        D("0.5"),
        D("0.10"),
        loss_rate_rule="fixed",
        loss_rate=D("0.30"),
        loss_cap_benchmark=(D("0.02"),),
        loss_cap_revenue=D("0.04"),
    ),
    TrackParameters(
        "MSSP",
        frozenset({"BE"}),
        2019,
        None,
        True,
        D("0.5"),
        D("0.10"),
        loss_rate_rule="fixed",
        loss_rate=D("0.30"),
        loss_cap_benchmark=(D("0.04"),),
        loss_cap_revenue=D("0.08"),
    ),
    # Commercial defaults: a contract states its own rates; these apply where it is silent.
    TrackParameters("COMMERCIAL", frozenset({"SHARED_SAVINGS"}), 2012, None, False, D("0.5"), D("0.10")),
    TrackParameters(
        "COMMERCIAL",
        frozenset({"SHARED_RISK", "CAPITATION"}),
        2012,
        None,
        True,
        D("0.5"),
        D("0.10"),
        loss_rate_rule="fixed",
        loss_rate=D("0.50"),
        loss_cap_benchmark=(D("0.05"),),
    ),
)


def track_parameters(program: str, track: str, year: int) -> TrackParameters:
    for row in TRACK_PARAMETERS:
        if row.covers(program, track, year):
            return row
    raise KeyError(f"no {program} parameters for track {track} in performance year {year}")


# One-sided MSR by assigned beneficiaries, linear within each band (42 CFR 425.604(b)).
MSR_BANDS: Final[tuple[tuple[int, int, Decimal, Decimal], ...]] = (
    (5_000, 5_999, D("0.039"), D("0.036")),
    (6_000, 6_999, D("0.036"), D("0.034")),
    (7_000, 7_999, D("0.034"), D("0.032")),
    (8_000, 8_999, D("0.032"), D("0.031")),
    (9_000, 9_999, D("0.031"), D("0.030")),
    (10_000, 14_999, D("0.030"), D("0.027")),
    (15_000, 19_999, D("0.027"), D("0.025")),
    (20_000, 49_999, D("0.025"), D("0.022")),
    (50_000, 59_999, D("0.022"), D("0.020")),
)
MSR_FLOOR: Final = D("0.020")  # 60,000 and more


def sequestration_rate(year: int) -> Decimal:
    """Medicare sequestration applied to shared savings payments for a performance year.
    Suspended May 2020 - March 2022, so PY2019 and PY2020 payments were not reduced."""
    return D(0) if year in (2019, 2020) else D("0.02")


def euc_offsets_all_losses(year: int) -> bool:
    """PY2020 and PY2021: the COVID-19 EUC policy offset every two-sided ACO's shared losses to zero."""
    return year in (2020, 2021)


def pay_for_performance_rule(year: int) -> Literal["scaled", "all_or_nothing", "alternative_scaled"]:
    """How quality turns the maximum sharing rate into the final one in a performance year."""
    if year <= 2020:
        return "scaled"
    if year <= 2022:
        return "all_or_nothing"
    return "alternative_scaled"


# ACO REACH defaults (METHODOLOGY.md section 2); every one is a contract term that can be overridden.
REACH_CORRIDORS: Final[dict[str, tuple[CorridorBand, ...]]] = {
    "PROFESSIONAL": (
        CorridorBand(upper=D("0.05"), share=D("0.50")),
        CorridorBand(upper=D("0.10"), share=D("0.35")),
        CorridorBand(upper=D("0.15"), share=D("0.15")),
        CorridorBand(upper=None, share=D("0.05")),
    ),
    "GLOBAL": (
        CorridorBand(upper=D("0.25"), share=D("1")),
        CorridorBand(upper=D("0.35"), share=D("0.50")),
        CorridorBand(upper=D("0.50"), share=D("0.25")),
        CorridorBand(upper=None, share=D("0.10")),
    ),
}
REACH_GLOBAL_2026_CORRIDORS: Final = (
    CorridorBand(upper=D("0.10"), share=D("1")),
    CorridorBand(upper=D("0.35"), share=D("0.50")),
    CorridorBand(upper=D("0.50"), share=D("0.25")),
    CorridorBand(upper=None, share=D("0.10")),
)


def reach_corridors(track: str, year: int) -> tuple[CorridorBand, ...]:
    if track == "GLOBAL" and year >= 2026:
        return REACH_GLOBAL_2026_CORRIDORS
    return REACH_CORRIDORS[track]


def reach_discount(track: str, year: int) -> Decimal:
    if track != "GLOBAL":
        return D(0)
    if year <= 2022:
        return D("0.02")
    if year <= 2024:
        return D("0.03")
    return D("0.04")


def reach_quality_withhold(year: int) -> Decimal:
    return D("0.05") if year >= 2026 else D("0.02")
