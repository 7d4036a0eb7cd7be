"""`acoflow`: run the embedded stack, load claim files, read positions, settle PUF rows, run the demo."""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from aiokafka.errors import KafkaConnectionError
from rich.console import Console
from rich.table import Table

from acoflow.clients import ServiceClient
from shared.settings import Settings, get_settings

console = Console(width=None if sys.stdout.isatty() else 200)


def _status(settings: Settings) -> dict[str, Any] | None:
    path = settings.state_dir / "status.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _bootstrap(settings: Settings) -> str:
    status = _status(settings)
    return status["broker"]["bootstrap"] if status else settings.kafka_bootstrap


def _service_url(settings: Settings, service: str) -> str:
    status = _status(settings)
    if status and service in status["services"]:
        url: str = status["services"][service]["url"]
        return url
    return f"http://{settings.host}:{settings.port_of(service)}"


@click.group()
def main() -> None:
    """acoflow: contract and risk management for value-based care."""


@main.command()
def up() -> None:
    """Start broker, database and the four services; run until Ctrl-C or SIGTERM. A process that dies is
    started again; one that keeps dying stops everything, saying which and why."""
    from acoflow.stack import CrashLoop, Stack

    settings = get_settings()
    stack = Stack(settings, settings.state_dir)
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stack.start()
    _print_endpoints(stack.status())
    console.print("[bold green]acoflow is up[/] - Ctrl-C stops everything")
    try:
        while not stopping:
            try:
                for line in stack.supervise():
                    console.print(f"[yellow]{line}[/]")
            except CrashLoop as exc:
                console.print(f"[red]{exc}: stopping[/]")
                stopping = True
            time.sleep(0.5)
    finally:
        stack.stop()
        console.print("stopped")


def _print_endpoints(status: dict[str, Any]) -> None:
    table = Table(title="acoflow endpoints")
    for column in ("component", "pid", "restarts", "where"):
        table.add_column(column)
    broker = status["broker"]
    table.add_row("broker (Kafka protocol)", str(broker["pid"]), str(broker.get("restarts", 0)), broker["bootstrap"])
    db = status["database"]
    table.add_row("postgresql", str(db.get("pid") or "-"), str(db.get("restarts", "-")), db["url"])
    for name, svc in status["services"].items():
        table.add_row(name, str(svc["pid"]), str(svc.get("restarts", 0)), f"{svc['url']}  (/health, /metrics)")
    console.print(table)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def status(as_json: bool) -> None:
    """What runs, with PIDs and endpoints."""
    import psutil

    data = _status(get_settings())
    if data is None:
        if as_json:
            click.echo(json.dumps({"running": False}))
        else:
            console.print("acoflow is not running")
        sys.exit(1)
    parts = [*data["services"].values(), data["broker"], data["database"]]
    for part in parts:
        part["alive"] = part.get("pid") is None or psutil.pid_exists(part["pid"])
    data["running"] = all(part["alive"] for part in parts)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print_endpoints(data)


@main.command()
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
    from services.claims_ingest.loaders.base import LoadError

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


def _api_key(settings: Settings) -> str:
    key = settings.api_key.get_secret_value()
    path = settings.state_dir / "api_key"
    if not key and path.exists():
        key = path.read_text().strip()
    if not key:
        raise click.UsageError("no API key: set ACOFLOW_API_KEY (or run `acoflow up`, which writes state_dir/api_key)")
    return key


def _client(service: str, settings: Settings | None = None) -> ServiceClient:
    """The service's API, as the running stack (or the settings) says where it is, with the configured key."""
    settings = settings or get_settings()
    return ServiceClient(service, _service_url(settings, service), _api_key(settings))


@main.group()
def contracts() -> None:
    """Contracts: apply from YAML, list, history."""


@contracts.command("apply")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def contracts_apply(files: tuple[Path, ...]) -> None:
    """Create or update contracts from YAML files (a new version only when something changed)."""
    from acoflow.contracts_client import apply, read_contract_file

    with _client("contracts") as api:
        for path in files:
            action, state = apply(api, read_contract_file(path))
            console.print(f"{state['contract_id']}: {action} (version {state['version']})")


@contracts.command("list")
@click.option("--json", "as_json", is_flag=True)
def contracts_list(as_json: bool) -> None:
    """Every contract at its latest version."""
    with _client("contracts") as api:
        rows = api.get("/contracts")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"contracts: {len(rows)}")
    for column in ("contract", "name", "payer", "program", "track", "year", "members", "version", "changed by", "changed at"):
        table.add_column(column)
    for c in rows:
        t = c["terms"]
        members = sum(c["roster"]["members"].values())
        table.add_row(c["contract_id"], c["name"], c["payer"], t["program"], t["track"], str(t["performance_year"]),
                      str(members), str(c["version"]), c["changed_by"], c["changed_at"][:19])  # fmt: skip
    console.print(table)


@contracts.command("history")
@click.argument("contract_id")
@click.option("--json", "as_json", is_flag=True)
def contracts_history(contract_id: str, as_json: bool) -> None:
    """Every change to a contract: version, who, when, what."""
    with _client("contracts") as api:
        rows = api.get(f"/contracts/{contract_id}/history")
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=f"{contract_id}: {len(rows)} changes")
    for column in ("version", "action", "actor", "at", "changes"):
        table.add_column(column)
    for h in rows:
        table.add_row(
            str(h.get("version")), h["action"], h["actor"], str(h["at"])[:19], json.dumps(h["changes"], default=str)[:200]
        )
    console.print(table)


@main.group()
def keys() -> None:
    """API keys for the contracts API (admin)."""


@keys.command("create")
@click.option("--role", type=click.Choice(["viewer", "editor", "admin", "phi"]), required=True)
@click.option("--name", required=True, help="who or what uses the key (shown in audit records)")
def keys_create(role: str, name: str) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    with _client("contracts") as api:
        created = api.post("/keys", {"name": name, "role": role})
    click.echo(created["key"])
    console.print(f"key {created['key_id']} ({role}) for {name}: keep it now, it is not shown again", style="dim")


@keys.command("recover")
@click.option("--name", required=True, help="who recovers (shown in audit records)")
@click.option("--database-url", envvar="ACOFLOW_DATABASE_URL", default=None, help="default: the running stack's")
def keys_recover(name: str, database_url: str | None) -> None:
    """A new admin key written straight to the contracts schema, for when no admin key works any more (all lost
    or revoked). Run where the database is reachable; the key reaches every service over keys.v1 like any other,
    once the contracts service runs, and the recovery is logged in the contracts audit log."""
    url = database_url or (_status(get_settings()) or {}).get("database", {}).get("url")
    if not url:
        raise click.UsageError("no database: pass --database-url (or set ACOFLOW_DATABASE_URL)")
    key_id, key = asyncio.run(_recover_key(url, name))
    click.echo(key)
    console.print(f"admin key {key_id} for {name}: keep it now, it is not shown again", style="dim")


async def _recover_key(url: str, name: str) -> tuple[str, str]:
    import asyncpg

    from services.contracts.keys_api import publish_key
    from shared.auth import key_hash, new_key
    from shared.unit_of_work import UnitOfWork

    key_id, key = new_key()
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO contracts.api_keys (key_id, name, role, key_hash, created_by) VALUES ($1, $2, 'admin', $3, $4)",
                key_id,
                name,
                key_hash(key),
                f"recover:{name}",
            )
            await conn.execute(
                "INSERT INTO contracts.audit_log (contract_id, version, actor, action, changes) VALUES ('-', NULL, $1,"
                " 'keys.recover', $2::jsonb)",
                f"recover:{name}",
                json.dumps({"key_id": key_id, "role": "admin"}),
            )
            uow = UnitOfWork(conn, "contracts")
            publish_key(uow, key_id, name, "admin", key_hash(key), revoked=False)
            await uow.flush()
    finally:
        await conn.close()
    return key_id, key


@keys.command("list")
def keys_list() -> None:
    with _client("contracts") as api:
        rows = api.get("/keys")
    table = Table(title="API keys")
    for column in ("key id", "name", "role", "created by", "created", "last used", "revoked"):
        table.add_column(column)
    for k in rows:
        table.add_row(k["key_id"], k["name"], k["role"], k["created_by"], str(k["created_at"])[:19],
                      str(k["last_used_at"] or "")[:19], str(k["revoked_at"] or "")[:19])  # fmt: skip
    console.print(table)


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    with _client("contracts") as api:
        api.delete(f"/keys/{key_id}")
    console.print(f"revoked {key_id}")


@main.group()
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
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=f"rejects ({status}): {len(rows)}")
    for column in ("event id", "received", "source", "reasons", "status"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r["event_id"]), str(r["received_at"])[:19], r["source"], reasons_text(r["reasons"]), r["status"])
    console.print(table)


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


def _positions(api: ServiceClient, contract: str | None) -> list[dict[str, Any]]:
    if contract:
        one = api.get(f"/positions/{contract}", missing_ok=True)
        return [] if one is None else [one]
    return api.pages("/positions", cursor="contract_id", page=1000)


def _money(value: Any) -> str:
    return f"{Decimal(str(value)):,.2f}"


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


@main.command()
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
        if as_json:
            click.echo(json.dumps(points, indent=2))
            return
        table = Table(title=f"{contract}: position a day")
        for column in ("day", "spend to date", "projected expenditure", "shared savings (losses)", "P(clears MSR)"):
            table.add_column(column)
        for p in points:
            table.add_row(
                p["day"], _money(p["paid_to_date"]), _money(p["projected_expenditure"]),
                _money(p["projected_shared_savings_losses"]), str(p["probability_clears_msr"]),
            )  # fmt: skip
        console.print(table)
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


@main.command("what-if")
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


@main.group()
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


@main.command()
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


@main.group()
def benchmark() -> None:
    """The performance-year benchmark: estimates and their check against CMS's results."""


@benchmark.command("backtest")
@click.option("--prior", "prior_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prior-year", required=True, type=int)
@click.option("--current", "current_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--performance-year", required=True, type=int)
@click.option("--worst", default=10, show_default=True, help="how many of the largest misses to list")
def benchmark_backtest(prior_path: Path, prior_year: int, current_path: Path, performance_year: int, worst: int) -> None:
    """Predict each ACO's UpdatedBnchmk for the performance year from the prior year's results PUF and what an
    ACO knows during the year; score against the published one and against the naive estimate (HistBnchmk x
    the prior year's trend). Files are CMS's (one year, no year column) or multi-year with a year column."""
    from acoflow.benchmark_backtest import backtest, percentile, rows_of_year

    prior = rows_of_year(prior_path, prior_year)
    current = rows_of_year(current_path, performance_year)
    if not prior or not current:
        raise click.UsageError(f"no rows: prior {prior_year} has {len(prior)}, current {performance_year} has {len(current)}")
    try:
        result = backtest(prior, current, performance_year)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if not result.predictions:
        raise click.ClickException("no ACO of the current file has the columns the estimate needs")
    errors = [p.error * 100 for p in result.predictions]
    naive = [p.naive_error * 100 for p in result.predictions]
    hundredth = Decimal("0.01")
    click.echo(f"performance_year={performance_year} prior_year={prior_year} acos={len(current)} predicted={len(errors)}")
    click.echo(f"national_one_year_trend={result.national_one_year.quantize(Decimal('0.0001'))}")
    click.echo(
        f"median_abs_pct_error={statistics.median(errors).quantize(hundredth)}"
        f" p90_abs_pct_error={percentile(errors, Decimal('0.9')).quantize(hundredth)}"
    )
    click.echo(
        f"naive_median_abs_pct_error={statistics.median(naive).quantize(hundredth)}"
        f" naive_p90_abs_pct_error={percentile(naive, Decimal('0.9')).quantize(hundredth)}"
    )
    for p in sorted(result.predictions, key=lambda p: -p.error)[:worst]:
        click.echo(f"  worst {p.key}: predicted {p.predicted:,.0f} published {p.published:,.0f} ({p.error * 100:.2f}%)")
    for key, why in result.skipped[:worst]:
        click.echo(f"  not predicted {key or '(no id)'}: {why}")


@benchmark.command("backtest-years")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def benchmark_backtest_years(paths: tuple[Path, ...]) -> None:
    """The backtest of every year whose prior year the files hold, one line a year: the error's median and 90th
    percentile, the worst ACO, how many ACOs needed a fallback for a suppressed cell, and whether the goal (median
    <= 1.5%, p90 <= 3.5%, no ACO beyond 25%) is met; then the national growth the prior year could not give (the
    median signed error) and the error left once it is divided out. Multi-year files by their year column, CMS's yearly files by
    the year in their name."""
    from acoflow.benchmark_backtest import every_pair, rows_by_year

    try:
        pairs = every_pair(rows_by_year(paths))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    hundredth = Decimal("0.01")
    for summary, year, why in pairs:
        if summary is None:
            click.echo(f"PY{year} from PY{year - 1}: not predicted: {why}")
            continue
        worst = summary.worst
        click.echo(
            f"PY{year} from PY{year - 1}: acos={summary.acos} predicted={summary.predicted}"
            f" median={(summary.median * 100).quantize(hundredth)}% p90={(summary.p90 * 100).quantize(hundredth)}%"
            f" worst={worst.key} {(worst.error * 100).quantize(hundredth)}% (predicted {worst.predicted:,.0f}, published"
            f" {worst.published:,.0f}) fallbacks={summary.with_fallbacks}"
            f" national_one_year={summary.national_one_year.quantize(Decimal('0.0001'))}"
            f" goal={'met' if summary.meets_goal else 'not met'}"
            f" national_miss={(summary.national_miss * 100).quantize(hundredth)}%"
            f" given_national: median={(summary.median_given_national * 100).quantize(hundredth)}%"
            f" p90={(summary.p90_given_national * 100).quantize(hundredth)}%"
        )


@main.command()
@click.option("--out", "output", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/asyncapi.json"),
              show_default=True)  # fmt: skip
def asyncapi(output: Path) -> None:
    """Write the AsyncAPI 3.0 document of every topic (events, keys, who writes and reads them), and one JSON
    Schema per event type beside it (schemas/<event type>.json)."""
    from acoflow.kafka_acls import principals
    from shared.asyncapi import document, event_schemas

    output.write_text(json.dumps(document(principals()), indent=2, default=str) + "\n")
    folder = output.parent / "schemas"
    folder.mkdir(exist_ok=True)
    for event_type, schema in event_schemas().items():
        (folder / f"{event_type}.json").write_text(json.dumps(schema, indent=2, default=str) + "\n")
    console.print(f"wrote {output} and {folder}/")


@main.command("kafka-acls")
@click.option("--bootstrap", default="kafka:9093", show_default=True, help="the broker's admin listener")
@click.option("--command-config", default="/etc/kafka/admin.properties", show_default=True)
def kafka_acls(bootstrap: str, command_config: str) -> None:
    """Print the production broker's topics (kafka-topics.sh) and ACLs (each principal writes only its topics,
    reads only what it consumes; kafka-acls.sh), for the compose init step to run."""
    from acoflow.kafka_acls import commands

    for line in commands(bootstrap, command_config):
        click.echo(line)


@main.command("settle-puf")
@click.argument("input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--performance-year", type=int, default=None, help="the year of a CMS file that has no year column")
def settle_puf(input_path: Path, output: Path, performance_year: int | None) -> None:
    """Settle MSSP results PUF rows (our format or CMS's file as downloaded) from their inputs; compare with
    the published earned savings/losses where present and explain every miss."""
    from acoflow.puf import cell_rules, explain_miss, read_rows, settle_rows, write_results

    started = time.perf_counter()
    rows = read_rows(input_path)
    results = list(settle_rows(rows, performance_year))
    elapsed = time.perf_counter() - started
    write_results(output, list(rows[0].keys()) if rows else [], results)
    click.echo(f"rows: {len(results)}  settled in {elapsed:.3f} s ({len(results) / max(elapsed, 1e-9):,.0f} rows/s)")
    for column, counts in cell_rules(rows).items():
        click.echo(f"  {column}: " + ", ".join(f"{rule} {n}" for rule, n in counts.most_common()))
    compared = [r for r in results if r.published is not None]
    if compared:
        dollar = sum(r.within(Decimal(1)) for r in compared)
        share = sum(r.within(Decimal(1), Decimal("0.001")) for r in compared)
        click.echo(f"within $1: {dollar}/{len(compared)} ({dollar / len(compared):.2%})")
        click.echo(f"within 0.1% (or $1): {share}/{len(compared)} ({share / len(compared):.2%})")
        for year in sorted({r.year for r in compared if r.year is not None}):
            of_year = [r for r in compared if r.year == year]
            ok = sum(r.within(Decimal(1), Decimal("0.001")) for r in of_year)
            click.echo(f"  PY{year}: {ok}/{len(of_year)} within 0.1% ({ok / len(of_year):.2%})")
    _print_misses([r for r in compared if not r.within(Decimal(1), Decimal("0.001"))], explain_miss)
    unsettled = Counter(r.error for r in results if r.error and r.published is None)
    for error, n in unsettled.most_common():
        click.echo(f"  not settled, no published figure ({n} rows): {error}")


def _print_misses(misses: list[Any], explain: Callable[[Any], str]) -> None:
    """Each miss with its cause; rows that could not be settled at all, grouped by the reason."""
    errors = Counter(r.error for r in misses if r.error)
    for error, n in errors.most_common():
        years = sorted({r.year for r in misses if r.error == error and r.year is not None})
        click.echo(f"  not settled ({n} rows, PY{'/'.join(map(str, years))}): {error}")
    for r in (r for r in misses if not r.error):
        gate = r.settlement and r.settlement.gate
        click.echo(f"  miss line {r.line}: PY{r.year} published {r.published} computed {r.computed} ({gate}): {explain(r)}")


@main.command()
@click.option("--lines", default=100_000, show_default=True)
@click.option("--members", default=5_000, show_default=True)
@click.option("--timeout", default=600, show_default=True, help="seconds to wait for settlement to catch up")
def demo(lines: int, members: int, timeout: int) -> None:
    """Start the stack, apply a demo MSSP contract, load a generated feed, print positions, stop."""
    from acoflow.contracts_client import apply, read_contract_file
    from acoflow.demo import DEMO_CONTRACT_ID, generate_feed, write_demo_contract
    from acoflow.load import publish
    from acoflow.stack import Stack

    settings = get_settings()
    stack = Stack(settings, settings.state_dir)
    console.print("starting the embedded stack ...")
    stack.start()
    ok = False
    try:
        _print_endpoints(stack.status())
        with ServiceClient("contracts", stack.url("contracts"), stack.api_key) as api:
            action, state = apply(api, read_contract_file(write_demo_contract(settings.state_dir, members)))
        console.print(f"contract {DEMO_CONTRACT_ID}: {action}, version {state['version']}, {members} members")
        feed = settings.state_dir / "demo_feed.jsonl"
        expected = generate_feed(feed, lines, members)
        console.print(f"generated {lines} claim lines, total {_money(expected)}")
        started = time.perf_counter()
        asyncio.run(publish([feed], "jsonl", "CMS", stack.bootstrap, console, quiet=False))
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            with ServiceClient("settlement", stack.url("settlement"), stack.api_key, timeout=10) as api:
                rows = _positions_at(api)
            if rows and Decimal(rows[0]["paid_to_date"]) == expected:
                ok = True
                break
            time.sleep(1)
        elapsed = time.perf_counter() - started
        print_positions(rows)
        spend = Decimal(rows[0]["paid_to_date"]) if rows else Decimal(0)
        verdict = "[green]equal[/]" if ok else "[red]NOT equal[/]"
        console.print(
            f"settlement spend {_money(spend)} vs feed total {_money(expected)}: {verdict} "
            f"({lines} lines settled in {elapsed:.1f} s)"
        )
    finally:
        stack.stop()
        console.print("stack stopped")
    sys.exit(0 if ok else 1)


def _positions_at(api: ServiceClient) -> list[dict[str, Any]]:
    """The positions so far; none while settlement is not answering yet."""
    try:
        return _positions(api, None)
    except click.ClickException:
        return []


if __name__ == "__main__":
    main()
