"""The performance-year benchmark (METHODOLOGY.md section 6): what CMS sets after the year, estimated during it.

By enrollment type t: updated_t = historical_t x capped risk ratio_t x update_t, where the historical benchmark
is CMS's (BY3 dollars, after regional and prior-savings adjustments), the risk ratio is the performance year's
prospective CMS-HCC score over BY3's (positive changes capped over the agreement period), and the update is
(1 - a) x [(1 - w) x regional growth_t + w x national growth] + a x ACPT, as growth factors from BY3 to the
performance year. The benchmark per capita weights the types by the year's person-years. No I/O, Decimal.
Every step is kept in the result, so a position can show how its benchmark was reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from shared.terms import ENROLLMENT_TYPES, EnrollmentType

D = Decimal
ONE = D(1)


@dataclass(frozen=True)
class DatedRule:
    first_year: int  # the agreement start year (risk cap) or performance year (ACPT weight) it applies from
    value: Decimal
    source: str


# Positive risk-score growth from BY3 is capped over the agreement period: 3% for agreements beginning on or after
# July 1, 2019 (42 CFR 425.601(a)(10), 425.605(a)(1)(ii), 425.610(a)(2)(i)). Before, continuously assigned
# beneficiaries were adjusted by demographic factors and only downward by HCC (425.602, 425.603): no cap applies
# to the HCC ratio as such, and CMS's demographic scores are not published; the ratio is used uncapped.
RISK_CAPS: Final[tuple[DatedRule, ...]] = (
    DatedRule(2019, D("0.03"), "42 CFR 425.601(a)(10): +3% over the agreement period (agreements from July 2019)"),
)
# The weight of the Accountable Care Prospective Trend in the update (CY2024 PFS final rule, 88 FR 79093;
# 42 CFR 425.652(b)): one third for agreements beginning in 2024 or later (unverified for earlier agreements'
# PY2024+ updates; a contract states its own).
ACPT_WEIGHTS: Final[tuple[DatedRule, ...]] = (
    DatedRule(2024, D(1) / D(3), "42 CFR 425.652(b)(2) (CY2024 PFS final rule): one third, agreements from 2024"),
)


def risk_cap(agreement_start_year: int) -> Decimal | None:
    rule = next((r for r in sorted(RISK_CAPS, key=lambda r: -r.first_year) if agreement_start_year >= r.first_year), None)
    return None if rule is None else rule.value


def acpt_weight(agreement_start_year: int) -> Decimal:
    rule = next((r for r in sorted(ACPT_WEIGHTS, key=lambda r: -r.first_year) if agreement_start_year >= r.first_year), None)
    return D(0) if rule is None else rule.value


@dataclass(frozen=True)
class Trend:
    """Growth factors from BY3 to the performance year (1.05: 5% growth over the span)."""

    national: Decimal
    regional: dict[EnrollmentType, Decimal] = field(default_factory=dict)  # by type; missing: the national factor
    national_weight: Decimal = ONE  # w: the ACO's share of its region's assigned beneficiaries (national part)
    acpt: Decimal | None = None  # the ACPT factor, where the agreement blends it in

    def factor(self, etype: EnrollmentType, acpt_share: Decimal) -> Decimal:
        regional = self.regional.get(etype, self.national)
        blended = (ONE - self.national_weight) * regional + self.national_weight * self.national
        if acpt_share > 0:
            if self.acpt is None:
                raise ValueError("trend.acpt: this agreement blends in the ACPT, and no ACPT factor was given")
            return (ONE - acpt_share) * blended + acpt_share * self.acpt
        return blended


@dataclass(frozen=True)
class BenchmarkInputs:
    historical: dict[EnrollmentType, Decimal]  # per capita, BY3 dollars, after regional/prior-savings adjustments
    risk_by3: dict[EnrollmentType, Decimal]
    risk_py: dict[EnrollmentType, Decimal]
    person_years: dict[EnrollmentType, Decimal]  # the performance year's, by type
    agreement_start_year: int
    trend: Trend


@dataclass(frozen=True)
class TypeStep:
    enrollment_type: EnrollmentType
    historical: Decimal
    risk_ratio: Decimal  # PY / BY3
    capped_risk_ratio: Decimal
    update_factor: Decimal
    updated: Decimal
    person_years: Decimal


@dataclass(frozen=True)
class UpdatedBenchmark:
    per_capita: Decimal  # weighted by the performance year's person-years
    steps: tuple[TypeStep, ...]
    risk_cap: Decimal | None
    acpt_weight: Decimal

    def explanation(self) -> tuple[str, ...]:
        lines = []
        for s in self.steps:
            capped = "" if s.capped_risk_ratio == s.risk_ratio else f" (capped to {s.capped_risk_ratio:.4f})"
            lines.append(
                f"benchmark {s.enrollment_type}: historical {s.historical:,.2f} x risk {s.risk_ratio:.4f}{capped}"
                f" x update {s.update_factor:.4f} = {s.updated:,.2f} for {s.person_years} person-years"
            )
        lines.append(f"updated benchmark per capita {self.per_capita:,.2f} (weighted by the year's person-years)")
        return tuple(lines)


def updated_benchmark(inputs: BenchmarkInputs) -> UpdatedBenchmark:
    """The performance-year benchmark per capita by type and weighted; raises ValueError naming a missing input."""
    cap = risk_cap(inputs.agreement_start_year)
    acpt_share = acpt_weight(inputs.agreement_start_year)
    steps: list[TypeStep] = []
    for t in ENROLLMENT_TYPES:
        years = inputs.person_years.get(t, D(0))
        if years <= 0:
            continue
        if t not in inputs.historical:
            raise ValueError(f"historical.{t}: {years} person-years of {t} and no historical benchmark for it")
        by3, py = inputs.risk_by3.get(t), inputs.risk_py.get(t)
        ratio = ONE if not by3 or py is None else py / by3
        capped = min(ratio, ONE + cap) if cap is not None else ratio
        update = inputs.trend.factor(t, acpt_share)
        steps.append(TypeStep(t, inputs.historical[t], ratio, capped, update, inputs.historical[t] * capped * update, years))
    total_years = sum((s.person_years for s in steps), D(0))
    if total_years <= 0:
        raise ValueError("person_years: no person-years in the performance year")
    per_capita = sum((s.updated * s.person_years for s in steps), D(0)) / total_years
    return UpdatedBenchmark(per_capita, tuple(steps), cap, acpt_share)


def historical_by_type(
    historical: Decimal,
    base_years: dict[EnrollmentType, tuple[Decimal, Decimal, Decimal]],
    by3_years: dict[EnrollmentType, Decimal],
) -> dict[EnrollmentType, Decimal]:
    """Per-type historical benchmarks from the aggregate (HistBnchmk, at the BY3 mix) and each type's base-year
    spending weighted 10/30/60 (42 CFR 425.602(a)(7)): the aggregate shared out in proportion to the types'
    weighted spending. What CMS's benchmark report gives per type, when only its PUF is at hand."""
    weighted = {t: D("0.1") * e[0] + D("0.3") * e[1] + D("0.6") * e[2] for t, e in base_years.items()}
    mix = sum((by3_years.get(t, D(0)) for t in weighted), D(0))
    if mix <= 0:
        raise ValueError("person_years_by3: no BY3 person-years to weight the types by")
    average = sum((weighted[t] * by3_years.get(t, D(0)) for t in weighted), D(0)) / mix
    if average <= 0:
        raise ValueError("base-year spending: none recorded")
    return {t: historical * w / average for t, w in weighted.items()}
