"""What the command groups share: the console, where the running stack is, the API key, a service client."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import click
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


def _positions(api: ServiceClient, contract: str | None) -> list[dict[str, Any]]:
    if contract:
        one = api.get(f"/positions/{contract}", missing_ok=True)
        return [] if one is None else [one]
    return api.pages("/positions", cursor="contract_id", page=1000)


def _money(value: Any) -> str:
    return f"{Decimal(str(value)):,.2f}"


def print_rows(
    rows: list[dict[str, Any]],
    as_json: bool,
    title: str,
    columns: tuple[str, ...],
    cells: Callable[[dict[str, Any]], tuple[str, ...]],
) -> None:
    """Rows as JSON, or as a table of `columns` with each row's `cells`."""
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*cells(row))
    console.print(table)
