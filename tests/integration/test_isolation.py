"""A record that fails while being applied is retried on its own a bounded number of times, then quarantined
with the reason, while the rest of its batch is applied; a failure of the database itself is not the data's
fault and leaves the whole batch to be read again. On a real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from shared.consumer import MAX_APPLY_ATTEMPTS, BatchConsumer, Parsed, is_transient
from shared.db import apply_migrations, create_pool
from shared.envelope import new_envelope
from shared.events import MEMBER_ID_CHANGED, MemberIdChanged
from shared.topics import DEADLETTER, MEMBERS
from shared.unit_of_work import UnitOfWork, UnitsOfWork

pytestmark = pytest.mark.integration
SCHEMA = "isolation"


def record(offset: int, current: str) -> ConsumerRecord[Any, Any]:
    payload = MemberIdChanged(payer="CMS", previous_id=f"OLD{offset}", current_id=current, source="test")
    value = new_envelope(MEMBER_ID_CHANGED, payload, "test").to_bytes()
    return ConsumerRecord(MEMBERS.name, 0, offset, 0, 0, b"k", value, None, len(value), 1, [])


async def test_a_poison_record_is_quarantined_and_the_rest_applied_once(database: str, tmp_path: Any) -> None:
    pool = await create_pool(database, 2)
    calls: dict[str, int] = {}
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, SCHEMA, tmp_path)
            await conn.execute(f"CREATE TABLE {SCHEMA}.applied (current_id text PRIMARY KEY)")

        async def apply(uow: UnitOfWork, batch: list[Parsed[MemberIdChanged]]) -> None:
            conn = uow.conn
            for p in batch:
                current = p.envelope.payload.current_id
                calls[current] = calls.get(current, 0) + 1
                if current == "POISON":
                    raise ValueError("injected failure inside apply")
                if current == "UNSTORABLE":  # a value PostgreSQL refuses: the data's fault, not the database's
                    await conn.execute("SELECT 1 / 0")
                await conn.execute(f"INSERT INTO {SCHEMA}.applied VALUES ($1)", current)

        consumer = BatchConsumer(
            service="test",
            schema=SCHEMA,
            spec=MEMBER_ID_CHANGED,
            topic=MEMBERS,
            units=UnitsOfWork(lambda: pool, SCHEMA),
            apply=apply,
        )
        batch = [record(1, "A"), record(2, "POISON"), record(3, "B"), record(4, "UNSTORABLE"), record(5, "C")]
        await consumer.handle(batch)
        await consumer.handle(batch)  # redelivered (a crash before the offsets were committed): nothing twice

        applied = {r["current_id"] for r in await pool.fetch(f"SELECT current_id FROM {SCHEMA}.applied")}
        outbox = await pool.fetch(f"SELECT topic, value FROM {SCHEMA}.outbox ORDER BY id")
    finally:
        await pool.close()
    assert applied == {"A", "B", "C"}
    assert calls["POISON"] == 1 + MAX_APPLY_ATTEMPTS  # once in the batch, then on its own, bounded
    assert calls["UNSTORABLE"] == MAX_APPLY_ATTEMPTS  # the batch stopped at POISON before reaching it
    dead = [json.loads(bytes(r["value"])) for r in outbox]
    assert [r["topic"] for r in outbox] == [DEADLETTER.name, DEADLETTER.name]
    assert [d["payload"]["offset"] for d in dead] == [2, 4]
    reasons = [d["payload"]["reasons"][0] for d in dead]
    assert {r["code"] for r in reasons} == {"apply_failed"}
    assert "injected failure inside apply" in reasons[0]["message"] and "DivisionByZero" in reasons[1]["message"]


def test_failures_of_the_database_itself_are_transient() -> None:
    assert is_transient(ConnectionRefusedError())
    assert is_transient(asyncpg.exceptions.DeadlockDetectedError())
    assert is_transient(asyncpg.exceptions.AdminShutdownError())
    assert not is_transient(asyncpg.exceptions.DivisionByZeroError())
    assert not is_transient(asyncpg.exceptions.CharacterNotInRepertoireError())
    assert not is_transient(ValueError(str(uuid.uuid4())))
