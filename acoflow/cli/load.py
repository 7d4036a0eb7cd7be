"""`acoflow`: Loading claim files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from aiokafka.errors import KafkaConnectionError
from rich.console import Console
from rich.table import Table

from acoflow.cli.common import _bootstrap, console
from shared.settings import get_settings


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["cclf", "fhir", "tuva", "jsonl"]), default=None,
              help="detected from file name and content when omitted")  # fmt: skip
@click.option("--payer", default="CMS", show_default=True, help="payer of CCLF and FHIR claims (Tuva rows carry their own)")
@click.option("--dry-run", is_flag=True, help="parse and validate only; publish nothing")
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object")
@click.option("--roster-out", type=click.Path(dir_okay=False, path_type=Path), help="write CCLF8 members as a roster CSV")
def load(paths: tuple[Path, ...], fmt: str | None, payer: str, dry_run: bool, as_json: bool, roster_out: Path | None) -> None:
    """Read claim files (CCLF, FHIR EOB, Tuva CSV, canonical JSONL) and publish them to claims.submitted.v1."""
    from acoflow import load as loading
    from readers.base import LoadError

    settings = get_settings()
    err = Console(stderr=True)
    try:
        if dry_run:
            report = loading.dry_run(list(paths), fmt, payer, err, quiet=as_json)
        else:
            bootstrap = _bootstrap(settings)
            report = asyncio.run(loading.publish(list(paths), fmt, payer, bootstrap, err, quiet=as_json))
    except (ValueError, LoadError) as exc:
        raise click.UsageError(str(exc)) from exc
    except KafkaConnectionError as exc:
        raise click.ClickException(f"cannot reach the broker at {bootstrap} ({exc}); is the stack up (acoflow status)?") from exc
    if roster_out is not None:
        err.print(f"wrote {loading.write_roster(roster_out, report.members)} members to {roster_out}")
    if as_json:
        click.echo(loading.summary_json(report))
        return
    for note in report.notes:
        err.print(f"note: {note}")
    ledger = report.ledger
    if not dry_run:
        console.print(f"load {report.load_id} (the correlation id of its events, spend, positions and alerts)")
    console.print(
        f"{report.lines} claim lines, {report.rejected} rejected, {ledger.duplicates} re-delivered, "
        f"{ledger.conflicts} conflicting (refused: another row under a line key already taken), {ledger.denied} denied, "
        f"{ledger.superseded} superseded, {report.id_changes} member id changes; paid total {ledger.total}"
    )
    gross = ledger.gross_by_claim_type
    for kind, amount in ledger.by_claim_type.items():
        extra = f" (gross {gross[kind]}: IME, DSH and uncompensated care excluded)" if gross.get(kind) != amount else ""
        console.print(f"  {kind}: {amount}{extra}")
    if report.rejected:
        _print_refusals(report)
    if not dry_run:
        console.print(f"published {report.published} events")


def _print_refusals(report: Any) -> None:
    table = Table(title=f"refused: {report.rejected} records, by reason")
    for column in ("field", "reason", "records"):
        table.add_column(column)
    for (fld, code), n in report.refusals_by_reason.most_common():
        table.add_row(fld, code, f"{n:,}")
    console.print(table)
    console.print("first refused:")
    for r in report.first_refusals:
        console.print(f"  {r.where}: " + "; ".join(f"{x.field}: {x.message}" for x in r.reasons), markup=False)
