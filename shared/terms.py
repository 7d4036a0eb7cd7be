"""Contract terms as they travel on contracts.v1: the contract owner's choices, validated so that every
accepted contract can be settled. Program defaults (rates, caps, MSR table, sequestration) are not here:
they live in the settlement domain's parameter table and apply wherever a term is left unset."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.expenditure import PARTS_A_AND_B, ClaimType, counted_types
from shared.money import Money, Quantity, Rate
from shared.text import CalendarDate

EnrollmentType = Literal["esrd", "disabled", "aged_dual", "aged_nondual"]
ENROLLMENT_TYPES: tuple[EnrollmentType, ...] = ("esrd", "disabled", "aged_dual", "aged_nondual")
Program = Literal["MSSP", "REACH", "COMMERCIAL"]
RevenueCategory = Literal["low", "high"]
QualityStandard = Literal["met", "alternative", "not_met", "reporting"]

TRACKS: dict[str, frozenset[str]] = {
    # T1/T1P/T2/T3 legacy; BA..BE BASIC levels A-E; EN ENHANCED (T3 and EN follow the same rules).
    "MSSP": frozenset({"T1", "T1P", "T2", "T3", "BA", "BB", "BC", "BD", "BE", "EN"}),
    "REACH": frozenset({"PROFESSIONAL", "GLOBAL"}),
    "COMMERCIAL": frozenset({"SHARED_SAVINGS", "SHARED_RISK", "CAPITATION"}),
}


class CorridorBand(BaseModel):
    """Marginal band: the part of gross savings/losses up to `upper` (fraction of benchmark) is kept
    by the ACO at `share`. The last band has no upper edge."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    upper: Rate | None = Field(default=None, gt=0)
    share: Rate = Field(ge=0, le=1)


class BenchmarkUpdate(BaseModel):
    """What the performance-year benchmark is computed from (METHODOLOGY.md section 6), instead of a fixed one:
    CMS's historical benchmark by type, the BY3 and latest performance-year risk scores (quarterly reports
    arrive as new contract versions), the agreement's start year (its risk cap and ACPT weight) and the trend
    assumption: growth factors from BY3 to the performance year, expected and low/high."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    historical: dict[EnrollmentType, Money]
    risk_by3: dict[EnrollmentType, Rate]
    risk_py: dict[EnrollmentType, Rate]
    agreement_start_year: int = Field(ge=2012, le=2100)
    national_growth: Rate = Field(gt=0, le=3)
    national_growth_low: Rate | None = Field(default=None, gt=0, le=3)
    national_growth_high: Rate | None = Field(default=None, gt=0, le=3)
    regional_growth: dict[EnrollmentType, Rate] = Field(default_factory=dict)
    national_weight: Rate = Field(default=Decimal(1), ge=0, le=1)
    acpt: Rate | None = Field(default=None, gt=0, le=3)
    # The year's person-years by type; without them, the roster's member-months / 12.
    person_years: dict[EnrollmentType, Quantity] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.historical or any(v <= 0 for v in self.historical.values()):
            raise ValueError("historical: a positive historical benchmark for each enrollment type the roster has")
        for name in ("risk_by3", "risk_py"):
            if any(v <= 0 for v in getattr(self, name).values()):
                raise ValueError(f"{name}: risk scores must be positive")
        low, high = self.national_growth_low, self.national_growth_high
        if (low is not None and low > self.national_growth) or (high is not None and high < self.national_growth):
            raise ValueError("national_growth_low: low <= expected <= high")
        return self


class ContractTerms(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    program: Program
    track: str
    performance_year: int = Field(ge=2012, le=2100)
    period_start: CalendarDate
    period_end: CalendarDate
    # Annual per-capita benchmark by enrollment type (MSSP/REACH) or a PMPM (commercial).
    benchmark_per_capita: dict[EnrollmentType, Money] | None = None
    benchmark_pmpm: Money | None = Field(default=None, gt=0)
    # The performance-year benchmark computed from its inputs (replaces benchmark_per_capita where given).
    benchmark_update: BenchmarkUpdate | None = None
    benchmark_trend_scenario: Literal["low", "expected", "high"] = "expected"
    msr: Rate | None = Field(default=None, ge=0, le=Decimal("0.2"))
    mlr: Rate | None = Field(default=None, ge=0, le=Decimal("0.2"))
    sharing_rate: Rate | None = Field(default=None, ge=0, le=1)
    loss_sharing_rate: Rate | None = Field(default=None, ge=0, le=1)
    quality_scaled_sharing: bool = False
    savings_cap: Rate | None = Field(default=None, ge=0, le=1)
    savings_cap_amount: Money | None = Field(default=None, ge=0)
    loss_cap: Rate | None = Field(default=None, ge=0, le=1)
    loss_cap_amount: Money | None = Field(default=None, ge=0)
    participant_revenue: Money | None = Field(default=None, ge=0)
    two_sided_year: int = Field(default=1, ge=1, le=10)
    quality_score: Rate = Field(default=Decimal(1), ge=0, le=1)
    quality_standard: QualityStandard = "met"
    corridors: tuple[CorridorBand, ...] | None = None
    discount: Rate | None = Field(default=None, ge=0, lt=1)
    quality_withhold: Rate | None = Field(default=None, ge=0, lt=1)
    capitation_pmpm: Money | None = Field(default=None, gt=0)
    minimum_members: int = Field(default=0, ge=0)
    truncation_threshold: dict[EnrollmentType, Money] | None = None
    completion_factors: tuple[Rate, ...] | None = None
    sequestration: Rate | None = Field(default=None, ge=0, lt=1)
    euc_share: Rate = Field(default=Decimal(0), ge=0, le=1)
    # Claim types whose spend counts; None: the program's (see counted_claim_types).
    claim_types: tuple[ClaimType, ...] | None = Field(default=None, min_length=1)
    # CMS's high/low revenue class: low-revenue BASIC ACOs may share savings below the MSR (PY2024+).
    revenue_category: RevenueCategory | None = None
    # Advance investment payments to be recouped from this year's shared savings.
    advance_payment_recoupment: Money | None = Field(default=None, ge=0)
    # Prepaid shared savings CMS paid the ACO during this year (MSSP, PY2026+), recouped from its earned savings.
    prepaid_shared_savings: Money | None = Field(default=None, ge=0)
    # Stop-loss (ACO REACH's optional arrangement, or a commercial reinsurance): per-member spend above the
    # attachment point (truncation_threshold) is the stop-loss's, for a charge per member-month added to spend.
    stop_loss_charge_pmpm: Money | None = Field(default=None, ge=0)
    # An ACO that leaves during the year owes losses for the months it took part (prorated).
    termination_date: CalendarDate | None = None
    # The start of the ACO's current agreement period (MSSP): rules that apply by agreement, such as savings below
    # the MSR (agreements from 2024). Without it, benchmark_update's agreement_start_year (1 January) stands for it.
    agreement_start: CalendarDate | None = None

    @model_validator(mode="after")
    def _settleable(self) -> Self:
        if self.track not in TRACKS[self.program]:
            allowed = ", ".join(sorted(TRACKS[self.program]))
            raise ValueError(f"track: {self.track!r} is not a {self.program} track (one of {allowed})")
        if self.period_end <= self.period_start:
            raise ValueError("period_end: must be after period_start")
        if self.benchmark_per_capita is None and self.benchmark_pmpm is None and self.benchmark_update is None:
            raise ValueError(
                "benchmark_per_capita: give a per-capita benchmark by enrollment type, a benchmark_pmpm or a benchmark_update"
            )
        if self.benchmark_per_capita is not None and any(v <= 0 for v in self.benchmark_per_capita.values()):
            raise ValueError("benchmark_per_capita: every enrollment type's benchmark must be positive")
        if self.capitation_pmpm is not None and self.track != "CAPITATION":
            raise ValueError("capitation_pmpm: only a CAPITATION contract takes a capitation amount")
        if self.track == "CAPITATION" and self.capitation_pmpm is None:
            raise ValueError("capitation_pmpm: a CAPITATION contract needs its capitation PMPM")
        if self.corridors is not None:
            uppers = [b.upper for b in self.corridors]
            if not uppers or uppers[-1] is not None or any(u is None for u in uppers[:-1]):
                raise ValueError("corridors: every band but the last needs an upper edge; the last has none")
            edges = [u for u in uppers if u is not None]
            if edges != sorted(set(edges)):
                raise ValueError("corridors: band edges must increase")
        if self.completion_factors is not None and any(not 0 < f <= 1 for f in self.completion_factors):
            raise ValueError("completion_factors: each factor must be in (0, 1]")
        if self.claim_types is not None and self.program in ("MSSP", "REACH") and set(self.claim_types) != PARTS_A_AND_B:
            listed = ", ".join(sorted(PARTS_A_AND_B))
            raise ValueError(f"claim_types: {self.program} counts Parts A and B claims ({listed}) and never Part D")
        if self.stop_loss_charge_pmpm is not None and not self.truncation_threshold:
            raise ValueError("stop_loss_charge_pmpm: a stop-loss needs its attachment point in truncation_threshold")
        if self.termination_date is not None and not self.period_start <= self.termination_date <= self.period_end:
            raise ValueError("termination_date: must fall within the performance period")
        if self.prepaid_shared_savings and self.program != "MSSP":
            raise ValueError("prepaid_shared_savings: only MSSP prepays shared savings")
        return self

    @property
    def priced_types(self) -> frozenset[EnrollmentType] | None:
        """The enrollment types the benchmark prices (None: a PMPM prices every member alike)."""
        if self.benchmark_update is not None:
            return frozenset(self.benchmark_update.historical)
        return None if self.benchmark_per_capita is None else frozenset(self.benchmark_per_capita)

    @property
    def counted_claim_types(self) -> frozenset[ClaimType]:
        return counted_types(self.claim_types)

    @property
    def participation_months(self) -> int | None:
        """Months of the period the ACO took part in, when it terminated before the period's end."""
        if self.termination_date is None or self.termination_date >= self.period_end:
            return None
        return (
            (self.termination_date.year - self.period_start.year) * 12 + self.termination_date.month - self.period_start.month + 1
        )

    @property
    def months(self) -> int:
        return (self.period_end.year - self.period_start.year) * 12 + self.period_end.month - self.period_start.month + 1


def agreement_start(terms: ContractTerms) -> date | None:
    """The agreement period's start as the terms state it, else 1 January of the benchmark's agreement year."""
    if terms.agreement_start is not None:
        return terms.agreement_start
    return None if terms.benchmark_update is None else date(terms.benchmark_update.agreement_start_year, 1, 1)
