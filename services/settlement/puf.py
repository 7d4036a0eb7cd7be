"""Settling rows in the column format of CMS's MSSP public-use file (see ../shared/data/mssp_puf).

Only the inputs are read; the published outcome columns are compared against, never used."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from services.settlement.domain.settle import Settlement, SettlementError, SettlementInputs, settle
from shared.money import parse_decimal
from shared.terms import QualityStandard

INPUT_COLUMNS = (
    "performance_year",
    "track",
    "assigned_beneficiaries",
    "benchmark_total",
    "expenditure_total",
    "min_savings_rate",
    "quality_score",
    "met_quality_standard",
    "euc_loss_adjustment",
    "revenue_based_loss_limit",
)
PUBLISHED_COLUMN = "earned_savings_losses"
OUTPUT_COLUMN = "computed_earned_savings_losses"


def _optional(row: dict[str, str], column: str) -> Decimal | None:
    text = (row.get(column) or "").strip()
    return None if text == "" else parse_decimal(text, column)


def _flag(row: dict[str, str], column: str) -> bool | None:
    value = _optional(row, column)
    return None if value is None else value != 0


def inputs_from_row(row: dict[str, str]) -> SettlementInputs:
    missing = [
        c
        for c in (
            "performance_year",
            "track",
            "assigned_beneficiaries",
            "benchmark_total",
            "expenditure_total",
        )
        if not (row.get(c) or "").strip()
    ]
    if missing:
        raise SettlementError(f"{missing[0]}: required column is empty")
    score = _optional(row, "quality_score")
    met = _flag(row, "met_quality_standard")
    standard: QualityStandard
    if met is None:
        standard = "met" if score is None or score > 0 else "not_met"
    else:
        standard = "met" if met else "not_met"
    beneficiaries = parse_decimal(row["assigned_beneficiaries"], "assigned_beneficiaries")
    if beneficiaries != beneficiaries.to_integral_value() or beneficiaries < 0:
        raise SettlementError("assigned_beneficiaries: must be a whole, non-negative number")
    return SettlementInputs(
        program="MSSP",
        track=row["track"].strip().upper(),
        performance_year=int(parse_decimal(row["performance_year"], "performance_year")),
        assigned_beneficiaries=int(beneficiaries),
        benchmark_total=parse_decimal(row["benchmark_total"], "benchmark_total"),
        expenditure_total=parse_decimal(row["expenditure_total"], "expenditure_total"),
        msr=_optional(row, "min_savings_rate"),
        quality_score=score,
        quality_standard=standard,
        euc_loss_adjustment=_optional(row, "euc_loss_adjustment"),
        revenue_based_loss_cap=_flag(row, "revenue_based_loss_limit"),
    )


@dataclass(frozen=True)
class RowResult:
    line: int
    row: dict[str, str]
    settlement: Settlement | None
    error: str | None
    published: Decimal | None

    @property
    def computed(self) -> Decimal | None:
        return None if self.settlement is None else self.settlement.earned

    def within(self, dollars: Decimal = Decimal(0), share: Decimal = Decimal(0)) -> bool:
        if self.published is None or self.computed is None:
            return False
        diff = abs(self.computed - self.published)
        return diff <= dollars or diff <= share * abs(self.published)


def settle_rows(rows: Iterable[dict[str, str]]) -> Iterator[RowResult]:
    for line, row in enumerate(rows, start=2):
        published = _optional(row, PUBLISHED_COLUMN)
        try:
            result = settle(inputs_from_row(row))
        except (SettlementError, ValueError, KeyError) as exc:
            yield RowResult(line, row, None, str(exc), published)
        else:
            yield RowResult(line, row, result, None, published)


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
