"""settlement.member_stats on a real PostgreSQL: the per-contract member count, total and sum of squares that
apply_spend keeps equal what aggregating member_spend gives, with concurrent transactions on the same members."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import asyncpg
import pytest

from services.settlement.app import MIGRATIONS
from services.settlement.repository import apply_spend
from shared.db import apply_migrations, create_pool
from tests.terms import spend_deltas

pytestmark = pytest.mark.integration


async def _kept_and_recomputed(pool: asyncpg.Pool) -> tuple[dict[str, Any], dict[str, Any]]:
    kept = {r["contract_id"]: tuple(r)[1:] for r in await pool.fetch("SELECT * FROM settlement.member_stats")}
    recomputed = {
        r["contract_id"]: tuple(r)[1:]
        for r in await pool.fetch(
            "SELECT contract_id, count(*), sum(amount), sum(amount * amount) FROM settlement.member_spend GROUP BY 1"
        )
    }
    return kept, recomputed


async def test_stats_follow_member_spend(database: str) -> None:
    pool = await create_pool(database, 4)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "settlement", MIGRATIONS)
            await apply_spend(conn, spend_deltas([("A", "M1", "100.10"), ("A", "M2", "50"), ("B", "M1", "7.000001")]))
            # M1 again (and twice in one batch), a reversal that nets M2 to zero, a new member, a negative one.
            await apply_spend(
                conn,
                spend_deltas(
                    [("A", "M1", "0.90"), ("A", "M1", "-1"), ("A", "M2", "-50"), ("A", "M3", "12.345678"), ("B", "M9", "-3")]
                ),
            )
            await apply_spend(conn, spend_deltas([("A", "M2", "20")]))  # M2 had a row at zero: not a new member
        kept, recomputed = await _kept_and_recomputed(pool)
        assert kept == recomputed
        assert kept["A"] == (3, D("132.345678"), D("100") ** 2 + D("20") ** 2 + D("12.345678") ** 2)
        assert kept["B"] == (2, D("4.000001"), D("7.000001") ** 2 + D("9"))

        # Two transactions on the same members at once: the second waits on the first's rows and must count
        # the members the first inserted as existing, and square from the amounts the first left.
        first, second = await pool.acquire(), await pool.acquire()
        try:
            tx1, tx2 = first.transaction(), second.transaction()
            await tx1.start()
            await tx2.start()
            await apply_spend(first, spend_deltas([("C", "M1", "10"), ("C", "M2", "20"), ("A", "M1", "5")]))
            waiting = asyncio.create_task(
                apply_spend(second, spend_deltas([("C", "M1", "1"), ("C", "M3", "3"), ("A", "M1", "-5")]))
            )
            await asyncio.sleep(0.3)
            assert not waiting.done()  # blocked on the rows the first holds
            await tx1.commit()
            await waiting
            await tx2.commit()
        finally:
            await pool.release(first)
            await pool.release(second)
        kept, recomputed = await _kept_and_recomputed(pool)
        assert kept == recomputed
        assert kept["C"] == (3, D("34"), D("11") ** 2 + D("20") ** 2 + D("3") ** 2)
    finally:
        await pool.close()
