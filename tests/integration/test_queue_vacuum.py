"""QueueVacuum on a real PostgreSQL: a queue table is vacuumed once its deletes reach the threshold, not
before, and a failing VACUUM is logged, not raised into the loop that deleted the rows."""

from __future__ import annotations

import asyncpg
import pytest

from shared.db import QueueVacuum, create_pool

pytestmark = pytest.mark.integration


async def _dead_rows(conn: asyncpg.Connection) -> int:
    # The page inspection is exact, where pg_stat_user_tables is updated with a lag.
    return int(await conn.fetchval("SELECT count(*) FROM heap_page_items(get_raw_page('q.jobs', 0)) WHERE t_xmax <> 0"))


async def test_vacuums_after_enough_deletes(database: str) -> None:
    pool = await create_pool(database)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
            await conn.execute("CREATE SCHEMA q; CREATE TABLE q.jobs (id bigserial PRIMARY KEY, v text)")
            await conn.execute("ALTER TABLE q.jobs SET (autovacuum_enabled = false)")
            await conn.execute("INSERT INTO q.jobs (v) SELECT 'x' FROM generate_series(1, 20)")
        vacuum = QueueVacuum(lambda: pool, "q.jobs", every=10)
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM q.jobs WHERE id <= 6")
            await vacuum.deleted(6)
            assert await _dead_rows(conn) == 6  # under the threshold: left for later
            await conn.execute("DELETE FROM q.jobs WHERE id <= 12")
            await vacuum.deleted(6)
            assert await _dead_rows(conn) == 0  # 12 deletes reached 10: the dead rows are gone
            await conn.execute("DELETE FROM q.jobs WHERE id <= 15")
            await vacuum.deleted(3)
            assert await _dead_rows(conn) == 3  # the count started again

        missing = QueueVacuum(lambda: pool, "q.no_such_table", every=1)
        await missing.deleted(5)  # logged, not raised
    finally:
        await pool.close()
