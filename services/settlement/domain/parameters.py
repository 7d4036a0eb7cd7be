"""Program parameters as data: one row per program / track / range of performance years, each with the
paragraph of the regulation (or the CMS document) it comes from.

Every figure the methodology gives lives here and nowhere else; a contract's own terms override them.
`PARAMETERS_VERSION` changes whenever a row does, and every settlement names the version it used.
Values marked (unverified) had no published case to confirm them: they stay overridable contract terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final, Literal

from shared.terms import CorridorBand

PARAMETERS_VERSION: Final = "2026.12.2"

D = Decimal
LossRateRule = Literal["none", "fixed", "one_minus_sharing"]
QualityRule = Literal["scaled", "all_or_nothing", "standard_or_alternative"]


@dataclass(frozen=True)
class TrackParameters:
    program: str
    tracks: frozenset[str]
    first_year: int
    last_year: int | None
    two_sided: bool
    max_sharing_rate: Decimal
    savings_cap: Decimal  # fraction of total benchmark, applied after sequestration
    source: str
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
    # Savings below the MSR are shared at this rate by eligible ACOs in agreement periods beginning on or after
    # below_msr_agreements_from (42 CFR 425.605(h)).
    below_msr_rate: Decimal | None = None
    below_msr_agreements_from: date | None = None

    def covers(self, program: str, track: str, year: int) -> bool:
        return (
            self.program == program
            and track in self.tracks
            and self.first_year <= year
            and (self.last_year is None or year <= self.last_year)
        )


BASIC_SOURCE = "42 CFR 425.605(d)(1)"
# 42 CFR 425.605(h)(1)(iv) (CY2023 PFS final rule, 87 FR 69777): savings below the MSR, for agreement periods
# beginning on January 1, 2024 or later only; CMS's PY2024 results pay it to the low-revenue BASIC ACOs that began
# then and to none whose agreement began earlier.
BELOW_MSR_AGREEMENTS_FROM: Final = date(2024, 1, 1)
TRACK_PARAMETERS: Final[tuple[TrackParameters, ...]] = (
    TrackParameters("MSSP", frozenset({"T1"}), 2012, None, False, D("0.5"), D("0.10"), "42 CFR 425.604(d), (e)"),
    TrackParameters(
        "MSSP",
        frozenset({"BA", "BB"}),
        2019,
        None,
        False,
        D("0.4"),
        D("0.10"),
        f"{BASIC_SOURCE}(i)-(ii); savings below the MSR: 425.605(h) (CY2023 PFS final rule, 87 FR 69777), agreements from 2024",
        below_msr_rate=D("0.2"),
        below_msr_agreements_from=BELOW_MSR_AGREEMENTS_FROM,
    ),
    TrackParameters(
        "MSSP",
        frozenset({"T1P"}),
        2018,
        None,
        True,
        D("0.5"),
        D("0.10"),
        "Track 1+ Model participation agreement; revenue-based limit 8% of participant revenue, else 4% of benchmark"
        " (unverified)",
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
        "42 CFR 425.606(d)-(g) (savings cap and loss caps by two-sided year unverified)",
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
        "42 CFR 425.610(d)-(g); PY2023+ loss rate from the quality score: 425.610(f)(2) as amended by the CY2023 PFS"
        " final rule (87 FR 69777)",
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
        f"{BASIC_SOURCE}(iii): 2% of participant revenue, at most 1% of benchmark; 425.605(h) for agreements from 2024",
        loss_rate_rule="fixed",
        loss_rate=D("0.30"),
        loss_cap_benchmark=(D("0.01"),),
        loss_cap_revenue=D("0.02"),
        below_msr_rate=D("0.25"),
        below_msr_agreements_from=BELOW_MSR_AGREEMENTS_FROM,
    ),
    TrackParameters(
        "MSSP",
        frozenset({"BD"}),
        2019,
        None,
        True,
        D("0.5"),
        D("0.10"),
        f"{BASIC_SOURCE}(iv): 4% of participant revenue, at most 2% of benchmark; 425.605(h) for agreements from 2024",
        loss_rate_rule="fixed",
        loss_rate=D("0.30"),
        loss_cap_benchmark=(D("0.02"),),
        loss_cap_revenue=D("0.04"),
        below_msr_rate=D("0.25"),
        below_msr_agreements_from=BELOW_MSR_AGREEMENTS_FROM,
    ),
    TrackParameters(
        "MSSP",
        frozenset({"BE"}),
        2019,
        None,
        True,
        D("0.5"),
        D("0.10"),
        f"{BASIC_SOURCE}(v): the QPP revenue-based nominal amount (8%) of participant revenue, at most 1 point above"
        " the benchmark-based nominal amount (4% of benchmark); 425.605(h) for agreements from 2024",
        loss_rate_rule="fixed",
        loss_rate=D("0.30"),
        loss_cap_benchmark=(D("0.04"),),
        loss_cap_revenue=D("0.08"),
        below_msr_rate=D("0.25"),
        below_msr_agreements_from=BELOW_MSR_AGREEMENTS_FROM,
    ),
    # Commercial defaults: a contract states its own rates; these apply where it is silent.
    TrackParameters("COMMERCIAL", frozenset({"SHARED_SAVINGS"}), 2012, None, False, D("0.5"), D("0.10"), "acoflow default"),
    TrackParameters(
        "COMMERCIAL",
        frozenset({"SHARED_RISK", "CAPITATION"}),
        2012,
        None,
        True,
        D("0.5"),
        D("0.10"),
        "acoflow default",
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


# One-sided MSR by assigned beneficiaries, linear within each band (42 CFR 425.604(b); BASIC A-B and
# two-sided ACOs electing a variable MSR/MLR use the same table: 425.605(b)(1), (b)(3)).
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


@dataclass(frozen=True)
class DatedValue:
    """A value in force for performance years first_year..last_year (None: open-ended), with its source."""

    first_year: int
    last_year: int | None
    value: Decimal
    source: str

    def covers(self, year: int) -> bool:
        return self.first_year <= year and (self.last_year is None or year <= self.last_year)


def dated(table: tuple[DatedValue, ...], year: int, default: Decimal | None = None) -> Decimal:
    for row in table:
        if row.covers(year):
            return row.value
    return D(0) if default is None else default


# Medicare sequestration of shared savings payments, by the performance year they settle (it follows the
# payment date: suspended May 2020 - March 2022, so PY2019 and PY2020 payments were not reduced). Applies to
# MSSP and to ACO REACH savings payments; never to shared losses.
SEQUESTRATION: Final[tuple[DatedValue, ...]] = (
    DatedValue(2012, 2018, D("0.02"), "Budget Control Act of 2011 s. 251A; 2% in every PY2013-2018 PUF row"),
    DatedValue(2019, 2020, D(0), "CARES Act s. 3709 suspension (May 2020 - March 2022); 0% in the PY2019-2020 PUF"),
    DatedValue(2021, None, D("0.02"), "Budget Control Act s. 251A as extended; 2% in the PY2021-2024 PUF"),
)

# Share of two-sided shared losses forgiven for extreme and uncontrollable circumstances whatever the ACO's
# own counties: the COVID-19 public health emergency covered every county in every month of these years
# (42 CFR 425.605(f), 425.606(i), 425.610(i); 425.611). Other years: months affected / 12 * share of assigned
# beneficiaries in affected areas, which CMS computes (the PUF's DisAdj) or the contract states (euc_share).
EUC_BLANKET_OFFSET: Final[tuple[DatedValue, ...]] = (
    DatedValue(2020, 2022, D(1), "42 CFR 425.605(f), 425.610(i); CMS published 0 losses for every PY2020-2022 ACO"),
)


@dataclass(frozen=True)
class DatedQualityRule:
    first_year: int
    last_year: int | None
    rule: QualityRule
    source: str


# How quality turns the maximum sharing rate into the final one.
QUALITY_RULES: Final[tuple[DatedQualityRule, ...]] = (
    DatedQualityRule(2012, 2020, "scaled", "42 CFR 425.604(d), 425.605(d)(1), 425.606(d), 425.610(d): max rate * quality score"),
    DatedQualityRule(
        2021, 2022, "all_or_nothing", "42 CFR 425.512(a)(4)(i) and the track sections: standard met -> max rate, else 0"
    ),
    DatedQualityRule(
        2023,
        None,
        "standard_or_alternative",
        "42 CFR 425.512(a)(4)(ii), (a)(5) (CY2023 PFS final rule, 87 FR 69777): standard met -> max rate; alternative"
        " standard -> max rate * quality score; neither -> 0",
    ),
)


def quality_rule(year: int) -> QualityRule:
    for row in QUALITY_RULES:
        if row.first_year <= year and (row.last_year is None or year <= row.last_year):
            return row.rule
    return "scaled"


# A low-revenue ACO: its participants' Medicare Parts A and B FFS revenue is under this share of its assigned
# beneficiaries' Parts A and B FFS expenditure (42 CFR 425.20, "low revenue ACO").
LOW_REVENUE_SHARE: Final = D("0.35")

# Savings below the MSR (42 CFR 425.605(h)(1)(iii)): who is eligible besides the track's rate and agreement date.
BELOW_MSR_MIN_BENEFICIARIES: Final = 5_000  # the ACO's MSR must come from the table (5,000 or more assigned)


# Prepaid shared savings (42 CFR 425.640, CY2025 PFS final rule, 89 FR 97710): quarterly advances on an eligible
# ACO's expected shared savings, paid from PY2026 and recouped from the year's earned shared savings at
# reconciliation; what the savings do not cover stays owed (carried to the next year or repaid).
PREPAID_SAVINGS_FROM: Final = 2026


def sequestration_rate(year: int) -> Decimal:
    return dated(SEQUESTRATION, year, D("0.02"))


def euc_blanket_offset(year: int) -> Decimal:
    """Share of two-sided losses forgiven for every ACO in the year (0 when the year has no blanket policy)."""
    return dated(EUC_BLANKET_OFFSET, year)


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
REACH_DISCOUNT_GLOBAL: Final[tuple[DatedValue, ...]] = (
    DatedValue(2021, 2022, D("0.02"), "GPDC Model RFA (PY2021-2022)"),
    DatedValue(2023, 2024, D("0.03"), "ACO REACH financial methodology (PY2023-2024)"),
    DatedValue(2025, None, D("0.04"), "ACO REACH financial methodology (PY2025+)"),
)
REACH_QUALITY_WITHHOLD: Final[tuple[DatedValue, ...]] = (
    DatedValue(2021, 2022, D("0.05"), "GPDC Model RFA: 5% withhold (unverified)"),
    DatedValue(2023, 2025, D("0.02"), "ACO REACH financial methodology: 2% quality withhold"),
    DatedValue(2026, None, D("0.05"), "ACO REACH PY2026 changes: 5% quality withhold"),
)
# Where a REACH position puts its worst case: corridors share losses without limit, so the worst case is stated
# at a gross loss of this share of the benchmark (the last corridor edge of either option), plus the last
# band's share of anything beyond it, which the explanation names.
REACH_WORST_CASE_LOSS: Final = D("0.50")


def reach_corridors(track: str, year: int) -> tuple[CorridorBand, ...]:
    if track == "GLOBAL" and year >= 2026:
        return REACH_GLOBAL_2026_CORRIDORS
    return REACH_CORRIDORS[track]


def reach_discount(track: str, year: int) -> Decimal:
    if track != "GLOBAL":
        return D(0)
    return dated(REACH_DISCOUNT_GLOBAL, year, D("0.02") if year < 2021 else D("0.04"))


def reach_quality_withhold(year: int) -> Decimal:
    return dated(REACH_QUALITY_WITHHOLD, year, D("0.05"))
