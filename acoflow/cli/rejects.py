"""`acoflow`: Refused claim lines: list and replay."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from acoflow.cli.common import _bootstrap, _client, console, print_rows
from acoflow.clients import ServiceClient
from shared.settings import Settings, get_settings


@click.group()
def rejects() -> None:
    """Claim lines that were refused: list them, replay them after a fix."""


@rejects.command("list")
@click.option("--status", type=click.Choice(["open", "replayed", "all"]), default="open", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--originals", is_flag=True, help="with the original records (PHI: a phi or admin key; audited)")
def rejects_list(status: str, as_json: bool, originals: bool) -> None:
    """Rejected lines with their reasons, oldest first."""
    from acoflow.rejects import fetch, reasons_text

    with _client("claims_ingest") as api:
        rows = fetch(api, status, originals)
    print_rows(
        rows, as_json, f"rejects ({status}): {len(rows)}", ("event id", "received", "source", "reasons", "status"),
        lambda r: (str(r["event_id"]), str(r["received_at"])[:19], r["source"], reasons_text(r["reasons"]), r["status"]),
    )  # fmt: skip


@rejects.command("replay")
@click.argument("event_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="every open reject")
@click.option("--payload", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a corrected claim line (JSON) to submit in place of the one reject given")  # fmt: skip
def rejects_replay(event_ids: tuple[str, ...], replay_all: bool, payload: Path | None) -> None:
    """Re-submit rejects to claims.submitted.v1; those that fail again come back as new rejects."""
    if not event_ids and not replay_all:
        raise click.UsageError("give reject event ids, or --all")
    if payload is not None and len(event_ids) != 1:
        raise click.UsageError("--payload replaces exactly one reject: give its event id")
    settings = get_settings()
    with _client("claims_ingest", settings) as api:
        _replay(api, settings, event_ids, payload)


def _replay(api: ServiceClient, settings: Settings, event_ids: tuple[str, ...], payload: Path | None) -> None:
    from acoflow.rejects import fetch, mark, plan_replay
    from shared.broker import make_producer, publish_all
    from shared.topics import CLAIMS_SUBMITTED

    open_rows = {str(r["event_id"]): r for r in fetch(api, "open", originals=True)}
    unknown = [e for e in event_ids if e not in open_rows]
    if unknown:
        raise click.UsageError(f"not open rejects: {', '.join(unknown)}")
    chosen = [open_rows[e] for e in event_ids] if event_ids else list(open_rows.values())
    corrected = json.loads(payload.read_text()) if payload else None
    plans = [plan_replay(r, corrected) for r in chosen]
    ready = [p for p in plans if p.value is not None]

    async def send() -> None:
        producer = make_producer(_bootstrap(settings), "acoflow-rejects-replay", settings)
        await producer.start()
        try:
            await publish_all(producer, [(CLAIMS_SUBMITTED.name, p.key or "unknown", p.value) for p in ready if p.value])
        finally:
            await producer.stop()

    if ready:
        asyncio.run(send())
        mark(api, [p.event_id for p in ready])
    for p in plans:
        if p.skipped:
            console.print(f"[yellow]skipped[/] {p.event_id}: {p.skipped}")
    console.print(f"replayed {len(ready)} of {len(plans)} rejects")
