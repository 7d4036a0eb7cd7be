"""`acoflow`: Alert deliveries and their rules; unconfirmed events."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from acoflow.cli.common import _client, console
from shared.settings import get_settings


@click.group()
def notifications() -> None:
    """Alert deliveries: the dead letters, retries, and per-contract rules."""


@notifications.command("failed")
@click.option("--json", "as_json", is_flag=True)
def notifications_failed(as_json: bool) -> None:
    """Deliveries that used up their attempts (the dead-letter state)."""
    with _client("notifications") as api:
        rows = api.get("/deliveries", status="failed")
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=f"failed deliveries: {len(rows)}")
    for column in ("id", "contract", "rule", "kind", "attempts", "last error", "created"):
        table.add_column(column)
    for d in rows:
        table.add_row(str(d["id"]), d["contract_id"], d["rule"], d["kind"], str(d["attempts"]), str(d["last_error"]),
                      str(d["created_at"])[:19])  # fmt: skip
    console.print(table)


@notifications.command("retry")
@click.argument("ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="every failed delivery")
def notifications_retry(ids: tuple[str, ...], retry_all: bool) -> None:
    """Send failed deliveries again, with a fresh budget of attempts."""
    if not ids and not retry_all:
        raise click.UsageError("give delivery ids, or --all")
    body = {"ids": list(ids)} if ids else {}
    with _client("notifications") as api:
        retried = api.post("/deliveries/retry", body)["retried"]
    console.print(f"retrying {retried} deliveries")


@notifications.command("rules")
@click.argument("contract_id")
@click.option("--set", "rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML list of rules for this contract (replaces the ones set before)")  # fmt: skip
def notifications_rules(contract_id: str, rules_file: Path | None) -> None:
    """Show (or set) the alert rules in force for a contract."""
    import yaml

    with _client("notifications") as api:
        if rules_file is not None:
            rules = api.put(f"/rules/{contract_id}", yaml.safe_load(rules_file.read_text()) or [])
        else:
            rules = api.get(f"/rules/{contract_id}")
    click.echo(yaml.safe_dump(rules, sort_keys=False))


@click.command()
@click.option("--repair", is_flag=True, help="send every unconfirmed event again now")
@click.option("--older-than", type=float, default=0.0, show_default=True, help="only events unconfirmed this many seconds")
@click.option("--json", "as_json", is_flag=True)
def reconcile(repair: bool, older_than: float, as_json: bool) -> None:
    """What was sent on a confirmed hop (spend from claims_ingest to settlement, attribution from contracts to
    claims_ingest) and not confirmed yet, per contract. It is re-sent on its own after ACOFLOW_RESEND_AFTER_S;
    --repair re-sends it now. Exit 1 while anything is unconfirmed."""
    settings = get_settings()
    rows: list[dict[str, Any]] = []
    for service in ("claims_ingest", "contracts"):
        with _client(service, settings) as api:
            if repair:
                console.print(f"{service}: re-sent {api.post('/unconfirmed/resend')['resent']} events")
            rows += api.get("/unconfirmed", older_than_s=older_than)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    elif not rows:
        console.print("every spend and attribution event sent is confirmed by its consumer")
    else:
        table = Table(title="sent, not confirmed by the consumer")
        for column in ("topic", "contract", "events", "items", "amount", "first sent", "sends"):
            table.add_column(column)
        for r in rows:
            table.add_row(
                r["topic"], r["contract_id"], str(r["events"]), str(r["items"]), str(r["amount"]), str(r["first_sent_at"]),
                str(r["sends"]),
            )  # fmt: skip
        console.print(table)
    sys.exit(1 if rows else 0)
