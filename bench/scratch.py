"""A throwaway database for the component benchmarks: created, migrated for one service, dropped after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from shared.db import apply_migrations, create_pool

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@asynccontextmanager
async def scratch_pool(dsn: str, schema: str, migrations: Path) -> AsyncIterator[asyncpg.Pool]:
    name = f"acoflow_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        pool = await create_pool(dsn.rsplit("/", 1)[0] + "/" + name, 2)
        try:
            async with pool.acquire() as conn:
                await apply_migrations(conn, schema, migrations)
            yield pool
        finally:
            await pool.close()
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()
