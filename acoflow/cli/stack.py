"""`acoflow`: The embedded stack: start and supervise it, what runs, the demo."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from decimal import Decimal
from typing import Any

import click
from rich.table import Table

from acoflow.cli.common import _money, _positions, _status, console
from acoflow.cli.positions import print_positions
from acoflow.clients import ServiceClient
from shared.settings import get_settings


@click.command()
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


@click.command()
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


@click.command()
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
