"""A throwaway database for the component benchmarks: created, migrated for one service, dropped after."""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from aiokafka.structs import ConsumerRecord

from shared.db import apply_migrations, create_pool

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options every component benchmark shares: where to make its database, and the pipeline
    benchmark's spread of members over contracts."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--contracts", type=int, default=1000)
    return parser


@asynccontextmanager
async def scratch_pool(
    dsn: str, schema: str, migrations: Path, session: dict[str, str] | None = None
) -> AsyncIterator[asyncpg.Pool]:
    """`session`: the service's own PostgreSQL settings, as its pool has them."""
    name = f"acoflow_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        pool = await create_pool(dsn.rsplit("/", 1)[0] + "/" + name, 2, session)
        try:
            async with pool.acquire() as conn:
                await apply_migrations(conn, schema, migrations)
            yield pool
        finally:
            await pool.close()
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


async def server_cpu(pool: asyncpg.Pool) -> dict[int, float] | None:
    """CPU seconds so far of each backend serving this database; None when they are not on this machine."""
    async with pool.acquire() as conn:
        pids = [r["pid"] for r in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]
    try:
        return {pid: sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids}
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def server_cpu_used(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """CPU seconds the backends used between two server_cpu readings (a backend new since counts whole)."""
    if before is None or after is None:
        return None
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


async def measure(
    pool: asyncpg.Pool,
    handle: Callable[[list[ConsumerRecord[Any, Any]]], Awaitable[None]],
    batches: list[list[ConsumerRecord[Any, Any]]],
    items: Callable[[list[ConsumerRecord[Any, Any]]], int],
    rate: str,
    per: str,
    tidy: Callable[[], Awaitable[None]] | None = None,
) -> str:
    """Runs a consumer's handle() over the batches (the first five untimed: caches, prepared statements) and
    returns the figures line: `rate` (items a second), the service's CPU per item and, when the server is on
    this machine, its backends' CPU per item (`per` names an item). `tidy` runs after each batch, untimed but for the
    backends' CPU, which cannot be split."""
    for b in batches[:5]:
        await handle(b)
    before = await server_cpu(pool)
    wall = cpu = 0.0
    done = 0
    for b in batches[5:]:
        started, cpu_started = time.perf_counter(), time.process_time()
        await handle(b)
        wall += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        done += items(b)
        if tidy is not None:
            await tidy()
    used = server_cpu_used(before, await server_cpu(pool))
    line = f"{rate}={done / wall:,.0f}  service_cpu_us_per_{per}={cpu * 1e6 / done:.1f}"
    if used is not None:
        line += f"  postgres_cpu_us_per_{per}={used * 1e6 / done:.1f}"
    return line
