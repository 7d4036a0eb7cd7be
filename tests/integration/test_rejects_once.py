"""A batch redelivered after a crash (committed, offsets not) refuses its bad records again: the rejection
events carry the same ids, so each reject is kept once."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import ConsumerRecord

from services.claims_ingest.app import MIGRATIONS
from services.claims_ingest.handlers import SCHEMA, apply_claims, reject_claim, store_rejects
from shared.consumer import BatchConsumer, Parsed
from shared.db import apply_migrations, create_pool
from shared.envelope import parse_event
from shared.events import CLAIM_REJECTED, CLAIM_SUBMITTED
from shared.topics import CLAIMS_SUBMITTED
from shared.unit_of_work import UnitsOfWork
from tests.units import published

pytestmark = pytest.mark.integration


def record(offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="claims.submitted.v1",
        partition=3,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"M1",
        value=value,
        checksum=None,
        serialized_key_size=2,
        serialized_value_size=len(value),
        headers=[],
    )


async def test_a_redelivered_batch_keeps_each_reject_once(database: str) -> None:
    pool = await create_pool(database, 2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, SCHEMA, Path(MIGRATIONS))
        consumer = BatchConsumer(
            service="claims_ingest",
            schema=SCHEMA,
            spec=CLAIM_SUBMITTED,
            topic=CLAIMS_SUBMITTED,
            units=UnitsOfWork(lambda: pool, SCHEMA),
            apply=apply_claims,
            reject=reject_claim,
        )
        batch = [record(7, b"{not json"), record(8, b'{"event_type": "claim_line.submitted"}')]
        await consumer.handle(batch)
        await consumer.handle(batch)  # the same records again
        async with pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT event_id, value FROM {SCHEMA}.outbox ORDER BY id")
            assert len(rows) == 4 and len({r["event_id"] for r in rows}) == 2
            # Downstream, every copy lands in the rejects table once.
            parsed = [Parsed(record(0, bytes(r["value"])), parse_event(CLAIM_REJECTED, bytes(r["value"]))) for r in rows]
            async with conn.transaction():
                await published(conn, store_rejects, parsed)
            assert await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.rejects") == 2
        # A different record that happens to sit at a reused offset (a broker that lost its storage) is its own reject.
        await consumer.handle([record(7, b"{also not json")])
        async with pool.acquire() as conn:
            assert await conn.fetchval(f"SELECT count(DISTINCT event_id) FROM {SCHEMA}.outbox") == 3
    finally:
        await pool.close()
