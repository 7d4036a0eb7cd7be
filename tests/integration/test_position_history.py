"""A contract's position history on a real PostgreSQL: one point a day, the day's last; the current day's point is
the stored position itself, which becomes history when a position of a later day replaces it; and an install
upgraded from before migration 009 (which wrote every position to the history too) keeps its points."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from services.settlement import repository
from services.settlement.app import MIGRATIONS
from shared.db import apply_migrations, create_pool
from tests.terms import contract_state, spend_deltas
from tests.upgrades import migrations_before

pytestmark = pytest.mark.integration


async def test_one_point_a_day_the_days_last_across_the_upgrade(database: str, tmp_path: Path) -> None:
    before_009 = migrations_before(MIGRATIONS, "009", tmp_path / "migrations")
    pool = await create_pool(database, 2)
    try:
        async with pool.acquire() as conn:
            today = await conn.fetchval("SELECT current_date")
            await apply_migrations(conn, "settlement", before_009)
            # As the code before 009 left it: the position (sequence 2) in both tables, and an older day's point.
            await conn.execute(
                "INSERT INTO settlement.positions (contract_id, sequence, position) VALUES ('H1', 2, $1::jsonb)",
                {"sequence": 2},
            )
            await conn.executemany(
                "INSERT INTO settlement.position_history (contract_id, day, sequence, position) VALUES ('H1', $1, $2, $3::jsonb)",
                [(today - timedelta(days=2), 1, {"sequence": 1}), (today, 2, {"sequence": 2})],
            )
            assert (await apply_migrations(conn, "settlement", MIGRATIONS)) == ["009_history_on_day_change.sql"]

            async def points() -> list[tuple[date, int]]:
                return [(date.fromisoformat(p["day"]), p["sequence"]) for p in await repository.history(conn, "H1")]

            assert await points() == [(today - timedelta(days=2), 1), (today, 2)]

            # A new position today replaces today's point; the history table is not written.
            await repository.store_contract(conn, contract_state("H1"))
            await repository.apply_spend(conn, spend_deltas([("H1", "M1", "100.00")]))
            [(_, _, third)] = await repository.recompute(conn, {"H1"})
            assert third.payload.sequence == 3
            assert await points() == [(today - timedelta(days=2), 1), (today, 3)]
            assert await conn.fetchval("SELECT count(*) FROM settlement.position_history WHERE contract_id = 'H1'") == 2

            # The day turns (the stored position is made yesterday's): the next position ends yesterday's point.
            await conn.execute("UPDATE settlement.positions SET day = current_date - 1 WHERE contract_id = 'H1'")
            assert await points() == [(today - timedelta(days=2), 1), (today - timedelta(days=1), 3)]
            await repository.apply_spend(conn, spend_deltas([("H1", "M2", "50.00")]))
            [(_, _, fourth)] = await repository.recompute(conn, {"H1"})
            assert await points() == [(today - timedelta(days=2), 1), (today - timedelta(days=1), 3), (today, 4)]
            ended = await conn.fetchrow("SELECT sequence, position FROM settlement.position_history WHERE day = current_date - 1")
            assert ended["sequence"] == 3 and ended["position"] == third.payload.model_dump(mode="json")
            stored = await conn.fetchrow("SELECT day, position FROM settlement.positions WHERE contract_id = 'H1'")
            assert stored["day"] == today and stored["position"] == fourth.payload.model_dump(mode="json")
    finally:
        await pool.close()
