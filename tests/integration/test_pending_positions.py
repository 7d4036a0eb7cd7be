"""Settlement's position loop on a real PostgreSQL: a change committed while its contract is being
recomputed is not lost, and two passes never compute one contract at once."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal as D

import asyncpg
import pytest

from services.settlement import repository
from services.settlement.app import MIGRATIONS
from shared.db import apply_migrations, create_pool
from shared.events import RosterSummary, SpendDelta
from tests.terms import contract_state

pytestmark = pytest.mark.integration


def _spend(amount: str) -> SpendDelta:
    return SpendDelta(
        contract_id="P1",
        member_id="M1",
        line_key=f"k{amount}",
        enrollment_type="aged_nondual",
        claim_type="professional",
        service_month=datetime(2025, 3, 1).date(),
        paid_date=datetime(2025, 3, 20).date(),
        amount=D(amount),
    )


async def _pending(pool: asyncpg.Pool) -> list[tuple[str, int]]:
    rows = await pool.fetch("SELECT contract_id, mark FROM settlement.pending_positions ORDER BY 1")
    return [(r["contract_id"], r["mark"]) for r in rows]


async def test_a_mark_during_a_pass_survives_it_and_is_published_next(database: str) -> None:
    pool = await create_pool(database, 4)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "settlement", MIGRATIONS)
            async with conn.transaction():
                await repository.store_contract(conn, contract_state("P1"))
                await repository.apply_spend(conn, [_spend("100")])  # marks P1
        assert await _pending(pool) == [("P1", 1)]

        # A consumer applies more spend and marks the contract, and has not committed yet.
        consumer = await pool.acquire()
        tx = consumer.transaction()
        await tx.start()
        await repository.apply_spend(consumer, [_spend("50")])

        async def one_pass() -> tuple[int, list[object]]:
            async with pool.acquire() as conn, conn.transaction():
                taken, out = await repository.publish_pending(conn, 100)
                return taken, list(out)

        passing = asyncio.create_task(one_pass())
        await asyncio.sleep(0.5)
        assert not passing.done()  # it computed from what was committed and now waits for the marker's row
        await tx.commit()
        await pool.release(consumer)
        taken, out = await passing
        assert taken == 1 and len(out) == 1
        first = out[0][2].payload  # type: ignore[index]
        assert first.paid_to_date == D("100")  # the pass saw only the committed spend...
        assert await _pending(pool) == [("P1", 2)]  # ...so the later mark stays

        taken, out = await one_pass()
        assert taken == 1 and out[0][2].payload.paid_to_date == D("150")  # type: ignore[index]
        assert out[0][2].payload.sequence == first.sequence + 1  # type: ignore[index]
        assert await _pending(pool) == []
        assert await one_pass() == (0, [])
    finally:
        await pool.close()


async def test_two_passes_never_take_the_same_contract(database: str) -> None:
    pool = await create_pool(database, 4)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "settlement", MIGRATIONS)
            await repository.mark_pending(conn, {f"C{i:03d}" for i in range(50)})
        a = await pool.acquire()
        b = await pool.acquire()
        try:
            async with a.transaction(), b.transaction():
                taken_a, _ = await repository.publish_pending(a, 30)
                # The first pass still holds its 30: the second gets none of them, only what is left.
                taken_b, _ = await repository.publish_pending(b, 50)
            assert (taken_a, taken_b) == (30, 20)
        finally:
            await pool.release(a)
            await pool.release(b)
        assert await _pending(pool) == []
    finally:
        await pool.close()


async def test_a_pass_stores_each_position_and_queues_its_event_in_order(database: str) -> None:
    pool = await create_pool(database, 2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "settlement", MIGRATIONS)
            for cid in ("P3", "P1", "P2"):
                await repository.store_contract(conn, contract_state(cid))
            await repository.mark_pending(conn, {"P1", "P2", "P3"})
            async with conn.transaction():
                taken, out = await repository.publish_pending(conn, 10)
            queued = await conn.fetch("SELECT topic, key, event_id, value FROM settlement.outbox ORDER BY id")
            stored = {r["contract_id"]: r["position"] for r in await conn.fetch("SELECT * FROM settlement.positions")}
        assert taken == 3
        assert [(r["topic"], r["key"], r["event_id"], r["value"]) for r in queued] == [
            ("settlement.v1", e.payload.contract_id, e.event_id, e.to_bytes())  # type: ignore[attr-defined]
            for _, _, e in out
        ]
        assert stored == {e.payload.contract_id: e.payload.model_dump(mode="json") for _, _, e in out}  # type: ignore[attr-defined]
    finally:
        await pool.close()


async def test_a_contract_that_cannot_settle_gets_a_position_saying_why_and_the_others_go_on(database: str) -> None:
    """The probe a user ran: an ESRD member on a roster whose benchmark prices only aged/non-dual, sent as a
    contract event (contracts now refuses it, but events from before, or hostile ones, still arrive); and a
    contract whose numbers overflow a position field."""
    pool = await create_pool(database, 2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "settlement", MIGRATIONS)
            months = {f"2025-{m:02d}": {"esrd": 1} for m in range(1, 13)}

            good = RosterSummary(members={"aged_nondual": 10}, member_months={"2025-01": {"aged_nondual": 10}})
            async with conn.transaction():
                esrd = RosterSummary(members={"esrd": 1}, member_months=months)
                await repository.store_contract(conn, contract_state("ESRD", esrd))
                await repository.store_contract(
                    conn, contract_state("HUGE", good, benchmark_per_capita={"aged_nondual": D("0.01")})
                )  # a benchmark of a cent a year: the savings rate runs to millions
                await repository.store_contract(conn, contract_state("P1", good))
                await repository.apply_spend(
                    conn, [_spend("100"), _spend("200").model_copy(update={"contract_id": "HUGE", "line_key": "h"})]
                )
                await repository.mark_pending(conn, {"ESRD", "HUGE", "P1"})
            async with conn.transaction():
                taken, out = await repository.publish_pending(conn, 100)
        positions = {o[2].payload.contract_id: o[2].payload for o in out}  # type: ignore[attr-defined]
        assert taken == 3 and set(positions) == {"ESRD", "HUGE", "P1"}
        assert positions["ESRD"].gate == "cannot_settle" and "esrd" in positions["ESRD"].explanation[-1]
        assert positions["HUGE"].gate == "cannot_settle" and positions["HUGE"].paid_to_date == D("200")
        assert positions["P1"].gate != "cannot_settle" and positions["P1"].paid_to_date == D("100")
        assert await _pending(pool) == []
    finally:
        await pool.close()
