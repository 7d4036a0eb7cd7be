"""`acoflow`: Positions and what-ifs."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Any

import click
from rich.table import Table

from acoflow.cli.common import _client, _money, _positions, console, print_rows


def print_positions(rows: list[dict[str, Any]]) -> None:
    table = Table(title="settlement positions")
    for column in (
        "contract",
        "track",
        "as of",
        "members",
        "spend to date",
        "benchmark to date",
        "projected savings",
        "shared savings/losses",
        "exposure now",
        "exposure at cap",
        "P(clears MSR)",
    ):
        table.add_column(column, justify="right")
    for p in rows:
        table.add_row(
            p["contract_id"],
            f"{p['program']} {p['track']}",
            str(p["as_of"]),
            str(p["members"]),
            _money(p["paid_to_date"]),
            _money(p["benchmark_to_date"]),
            _money(p["projected_gross_savings"]),
            _money(p["projected_shared_savings_losses"]),
            _money(p["downside_exposure_now"]),
            _money(p["downside_exposure_at_cap"]),
            f"{Decimal(p['probability_clears_msr']):.1%}",
        )
    console.print(table)


@click.command()
@click.argument("contract", required=False)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--history", is_flag=True, help="the contract's position a day, oldest first")
def position(contract: str | None, as_json: bool, history: bool) -> None:
    """The latest settlement position(s), or one contract's history."""
    if history and contract is None:
        raise click.UsageError("--history needs a contract id")
    with _client("settlement") as api:
        points = api.get(f"/positions/{contract}/history", missing_ok=True) if history else None
        rows = [] if history else _positions(api, contract)
    if history:
        if points is None:
            raise click.ClickException(f"no position history for {contract} yet")
        columns = ("day", "spend to date", "projected expenditure", "shared savings (losses)", "P(clears MSR)")
        print_rows(
            points, as_json, f"{contract}: position a day", columns,
            lambda p: (p["day"], _money(p["paid_to_date"]), _money(p["projected_expenditure"]),
                       _money(p["projected_shared_savings_losses"]), str(p["probability_clears_msr"])),
        )  # fmt: skip
        return
    if as_json:
        click.echo(json.dumps(rows if contract is None else (rows[0] if rows else None), indent=2))
    elif not rows:
        console.print("no positions yet")
        sys.exit(1)
    else:
        print_positions(rows)


WHAT_IF_ROWS = (
    ("track", "track"),
    ("MSR", "msr"),
    ("MLR", "mlr"),
    ("gate", "gate"),
    ("projected savings rate", "projected_savings_rate"),
    ("final sharing rate", "final_sharing_rate"),
    ("projected shared savings/losses", "projected_shared_savings_losses"),
    ("downside exposure now", "downside_exposure_now"),
    ("downside exposure at cap", "downside_exposure_at_cap"),
    ("P(clears MSR)", "probability_clears_msr"),
    ("P(crosses MLR)", "probability_crosses_mlr"),
)


@click.command("what-if")
@click.argument("contract_id")
@click.option("--track", "tracks", multiple=True, help="settle under this track instead (repeat for several)")
@click.option("--msr", help="another MSR election (applies to every scenario)")
@click.option("--mlr", help="another MLR election (applies to every scenario)")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="any other term, e.g. reach_option=GLOBAL")
@click.option("--json", "as_json", is_flag=True)
def what_if(
    contract_id: str, tracks: tuple[str, ...], msr: str | None, mlr: str | None, sets: tuple[str, ...], as_json: bool
) -> None:
    """Settle a contract's current position under other terms, side by side with the current terms."""
    common: dict[str, Any] = {}
    for item in sets:
        field, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"--set {item!r}: expected FIELD=VALUE")
        common[field.strip()] = json.loads(value) if value[:1] in "[{" else value
    if msr is not None:
        common["msr"] = msr
    if mlr is not None:
        common["mlr"] = mlr
    scenarios = [{"terms": {**common, "track": t}} for t in tracks] or [{"terms": common}]
    with _client("settlement") as api:
        result = api.post(f"/positions/{contract_id}/what-if", {"scenarios": scenarios})
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"what-if: {contract_id}")
    table.add_column("")
    for s in result["scenarios"]:
        table.add_column(s["label"], justify="right")
    for title, key in WHAT_IF_ROWS:
        cells = []
        for s in result["scenarios"]:
            value = s["position"].get(key, s["terms"].get(key))
            is_money = key.startswith(("projected_shared", "downside"))
            cells.append(_money(value) if is_money else str(value))
        table.add_row(title, *cells)
    console.print(table)
