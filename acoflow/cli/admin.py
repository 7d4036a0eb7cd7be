"""`acoflow`: Contracts and API keys."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click
from rich.table import Table

from acoflow.cli.common import _client, _status, console, print_rows
from shared.settings import get_settings


@click.group()
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
    print_rows(
        rows, as_json, f"{contract_id}: {len(rows)} changes", ("version", "action", "actor", "at", "changes"),
        lambda h: (str(h.get("version")), h["action"], h["actor"], str(h["at"])[:19],
                   json.dumps(h["changes"], default=str)[:200]),
    )  # fmt: skip


@click.group()
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
