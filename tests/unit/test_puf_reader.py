"""CMS's results files read by rule: every cell convention CMS uses (blank, `*` suppressed, `-` not applicable,
percentages with or without `%`, thousands separators, `$`, parentheses for negatives), each tested, and written
into the real rows of CMS's PY2022 file: every row settles the same however its cells are written."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acoflow.puf import Reading, cell_rules, explain_miss, read_cell, read_rows, settle_rows
from tests.conftest import SHARED_DATA

PY2022 = SHARED_DATA / "mssp_puf" / "cms_files" / "Performance_Year_Financial_and_Quality_Results_2022.csv"


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("1234.5", Reading(Decimal("1234.5"))),
        (" -12 ", Reading(Decimal("-12"))),
        ("", Reading(None, ("blank",), "blank")),
        ("*", Reading(None, ("suppressed",), "suppressed")),
        ("-", Reading(None, ("not_applicable",), "not_applicable")),
        ("N/A", Reading(None, ("not_applicable",), "not_applicable")),
        ("6.46%", Reading(Decimal("0.0646"), ("percent",))),
        ("-0.5 %", Reading(Decimal("-0.005"), ("percent",))),
        ("62,404,688", Reading(Decimal("62404688"), ("thousands_separator",))),
        ("$1,234.50", Reading(Decimal("1234.50"), ("currency", "thousands_separator"))),
        ("-$1,234", Reading(Decimal("-1234"), ("currency", "thousands_separator"))),
        ("$-1,234", Reading(Decimal("-1234"), ("currency", "thousands_separator"))),
        ("(1,234)", Reading(Decimal("-1234"), ("parentheses_negative", "thousands_separator"))),
        ("($12.5)", Reading(Decimal("-12.5"), ("parentheses_negative", "currency"))),
        (".5", Reading(Decimal("0.5"))),
    ],
)
def test_each_convention(text: str, reading: Reading) -> None:
    assert read_cell(text) == reading


@pytest.mark.parametrize("text", ["1,23", "12,3456", "(-5)", "abc", "1e5", "--5", "$", "%", "5-", "١٢", "NaN", "Infinity"])
def test_anything_else_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError):
        read_cell(text)


def test_the_reader_says_which_rule_it_applied_to_each_column() -> None:
    rules = cell_rules(read_rows(PY2022))
    assert rules["MinSavPerc"] == {"percent": 482} and rules["QualScore"] == {"percent": 482}
    assert rules["DisAdj"]["blank"] == 467 and "N_AB" not in rules  # plain numbers need no rule


def rewrite(text: str, style: int) -> str:
    """The same cell as another convention would write it."""
    try:
        r = read_cell(text)
    except ValueError:
        return text  # a text column (names, tracks, dates) stays as it is
    if r.value is None:
        return {"blank": ["", " ", "-", "N/A"], "suppressed": ["*", "**"], "not_applicable": ["-", "", "n/a"]}[
            r.absent or "blank"
        ][style % (2 if r.absent == "suppressed" else 4 if r.absent == "blank" else 3)]
    v = r.value
    grouped = f"{abs(v):,f}"
    forms = [
        f"{v:f}",
        f"{v * 100:f}%",
        ("-" if v < 0 else "") + grouped,
        ("-$" if v < 0 else "$") + grouped,
        f"({grouped})" if v < 0 else f"{v:f}",
        f"$-{grouped}" if v < 0 else f" {v:f} ",
    ]
    return forms[style % len(forms)]


def outcomes(rows: list[dict[str, str]]) -> list[tuple[Decimal | None, str | None, str | None]]:
    return [(r.computed, r.settlement and r.settlement.gate, r.error) for r in settle_rows(rows, 2022)]


ROWS = read_rows(PY2022)
EXPECTED = outcomes(ROWS)


def test_every_row_of_the_file_settles_the_same_with_every_convention_written_in() -> None:
    columns = list(ROWS[0])
    for shift in range(6):
        rewritten = [{c: rewrite(v, i + j + shift) for j, (c, v) in enumerate(row.items())} for i, row in enumerate(ROWS)]
        assert list(rewritten[0]) == columns
        assert outcomes(rewritten) == EXPECTED


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(ROWS) - 1), st.lists(st.integers(0, 11), min_size=len(ROWS[0]), max_size=len(ROWS[0])))
def test_a_row_written_any_mix_of_conventions_settles_the_same(index: int, styles: list[int]) -> None:
    row = ROWS[index]
    rewritten = {c: rewrite(v, s) for (c, v), s in zip(row.items(), styles, strict=True)}
    assert outcomes([rewritten]) == [EXPECTED[index]]


CMS_FILES = Path(__file__).parents[1] / "fixtures" / "mssp_puf" / "cms_files"


def test_cms_py2023_and_py2024_files_as_downloaded_settle_every_row() -> None:
    py2023 = list(settle_rows(read_rows(CMS_FILES / "PY 2023 ACO Results PUF.csv"), 2023))
    py2024 = list(settle_rows(read_rows(CMS_FILES / "PY 2024 ACO Results PUF.csv"), 2024))
    assert (len(py2023), len(py2024)) == (453, 476) and not [r for r in py2023 + py2024 if r.error]
    assert all(r.within(Decimal(1), Decimal("0.001")) for r in py2024)  # savings below the MSR and the ACPT guardrail
    below = [r for r in py2024 if r.settlement and r.settlement.gate == "savings_below_msr"]
    assert len(below) == 13 and all(r.row["ReducedSS"] == "1" for r in below)
    # PY2023's three misses: low-revenue BASIC C/E losses the revenue-based limit decides; the file has no revenue.
    misses = [r for r in py2023 if not r.within(Decimal(1), Decimal("0.001"))]
    assert [r.row["ACO_ID"] for r in misses] == ["A1241", "A4627", "A5293"]
    assert all("does not say whether the revenue-based loss limit applied" in explain_miss(r) for r in misses)
    assert all("consistent with the low-revenue class" in explain_miss(r) for r in misses)
