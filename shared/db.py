"""PostgreSQL helpers: the pool, the migration runner, processed-event dedupe and the outbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.logging import get_logger

log = get_logger(__name__)

# A connection as handlers get it: straight from asyncpg or borrowed from the pool.
Conn = asyncpg.Connection | PoolConnectionProxy

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS public.acoflow_migrations (
    schema_name text NOT NULL,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, name)
)"""

# Every service schema carries these two tables, so the Guarantees in DESIGN.md hold the same way everywhere.
COMMON_TABLES = """
CREATE TABLE IF NOT EXISTS {schema}.processed_events (
    event_id uuid PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    key text NOT NULL,
    event_id uuid NOT NULL,
    value bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- A queue (rows inserted, then deleted): vacuum must not truncate its trailing empty pages, which takes an
-- exclusive lock the relay and every writer then wait on (QueueVacuum).
ALTER TABLE {schema}.outbox SET (vacuum_truncate = false);
-- Events sent on a confirmed hop and not confirmed yet by their consumer: re-sent until they are
-- (shared/confirmations.py). `summary` says what an event carries, for `acoflow reconcile`.
CREATE TABLE IF NOT EXISTS {schema}.unconfirmed (
    event_id uuid PRIMARY KEY,
    topic text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    summary jsonb NOT NULL DEFAULT '{{}}',
    first_sent_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz NOT NULL DEFAULT now(),
    sends integer NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS unconfirmed_sent ON {schema}.unconfirmed (topic, sent_at);
"""


async def _init_connection(conn: Conn) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    # Numeric as text: asyncpg's binary numeric codec runs digit by digit in Python, and a spend batch sends
    # thousands of amounts. 1,000 amounts cost 937 us to send and 1,224 us there and back in binary, 417 and
    # 634 us as text (this machine, one connection). Text is exact both ways: str() and Decimal() round trip.
    await conn.set_type_codec("numeric", encoder=str, decoder=Decimal, schema="pg_catalog", format="text")


async def _release(conn: Conn) -> None:
    """What a connection needs on its way back to the pool. asyncpg's default resets the whole session (one
    more round trip per transaction: advisory unlock, CLOSE, UNLISTEN, RESET ALL); our sessions change none
    of that: advisory locks are transaction-scoped (the migration lock is released where it is taken), and
    nothing LISTENs or SETs. A transaction left open by a failure is still rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(dsn: str, size: int = 4, session: dict[str, str] | None = None) -> asyncpg.Pool:
    """`session`: PostgreSQL settings for every connection of the pool (a service's own tuning)."""
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=size, init=_init_connection, reset=_release, server_settings=session
    )
    assert pool is not None
    return pool


async def apply_migrations(conn: Conn, schema: str, directory: Path, prefix: str = "") -> list[str]:
    """Apply the service's SQL files in name order, each once, recorded in public.acoflow_migrations.
    An advisory lock makes concurrent starts of the same service safe."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock(hashtext('acoflow_migrations'))")
    try:
        # Created only when missing: in production each service connects as a role with rights on its own
        # schema only (deploy/postgres-roles.sh makes both beforehand), which may not create in public.
        if await conn.fetchval("SELECT to_regclass('public.acoflow_migrations')") is None:
            await conn.execute(MIGRATIONS_TABLE)
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema):
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(COMMON_TABLES.format(schema=schema))
        done = {r["name"] for r in await conn.fetch("SELECT name FROM public.acoflow_migrations WHERE schema_name = $1", schema)}
        for path in sorted(directory.glob("*.sql")):  # noqa: ASYNC240 - a handful of small files, once at start
            name = prefix + path.name
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text().replace("{schema}", schema))
                await conn.execute("INSERT INTO public.acoflow_migrations (schema_name, name) VALUES ($1, $2)", schema, name)
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext('acoflow_migrations'))")
    return applied


async def claim_new_events(conn: Conn, schema: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Record event ids as processed; returns those not seen before. Call inside the transaction that applies them."""
    if not event_ids:
        return set()
    rows = await conn.fetch(
        f"INSERT INTO {schema}.processed_events (event_id) SELECT DISTINCT unnest($1::uuid[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        list(event_ids),
    )
    return {r["event_id"] for r in rows}


class QueueVacuum:
    """Vacuums a queue table (rows inserted, handled, then deleted: an outbox, pending marks) after every
    `every` deleted rows. Autovacuum visits a database at most once a minute (autovacuum_naptime), and until
    it does every scan from the head of the queue steps over the rows deleted since: at 1,000 rows/s the
    outbox relay's `ORDER BY id LIMIT` took 0.8 ms a pass, mostly over dead rows. VACUUM of a small table takes
    milliseconds and blocks neither inserts nor deletes, provided the table is set not to be truncated
    (vacuum_truncate = false): truncating waited for an exclusive lock, 77 ms a vacuum of pending_positions."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], table: str, every: int = 5000) -> None:
        self._pool = pool
        self._table = table
        self._every = every
        self._deleted = 0

    async def deleted(self, rows: int) -> None:
        self._deleted += rows
        if self._deleted < self._every:
            return
        self._deleted = 0
        try:
            async with self._pool().acquire() as conn:
                await conn.execute(f"VACUUM {self._table}")
        except asyncpg.PostgresError as exc:  # e.g. not the table's owner: autovacuum still comes by
            log.warning("queue_vacuum_failed", table=self._table, error=type(exc).__name__)
