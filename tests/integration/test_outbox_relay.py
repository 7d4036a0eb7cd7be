"""The outbox relay on a real PostgreSQL and broker: it reports how long its oldest waiting event has waited
(the figure the AcoflowOutboxStale rule watches), and reports 0 once the outbox is empty."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from services.claims_ingest.app import MIGRATIONS
from services.claims_ingest.handlers import SCHEMA
from shared.broker import ensure_topics, make_producer
from shared.db import apply_migrations, create_pool
from shared.metrics import REGISTRY
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.topics import CLAIMS_REJECTED

pytestmark = pytest.mark.integration


async def test_the_relay_reports_the_age_of_its_oldest_event(database: str, broker: str) -> None:
    await ensure_topics(broker, [CLAIMS_REJECTED])
    pool = await create_pool(database, 2)
    producer = make_producer(broker, "test-outbox")
    await producer.start()
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, SCHEMA, Path(MIGRATIONS))
            for minutes in (10, 3):
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.outbox (topic, key, event_id, value, created_at)"
                    " VALUES ($1, 'k', $2, 'x', now() - make_interval(mins => $3))",
                    CLAIMS_REJECTED.name,
                    uuid.uuid4(),
                    minutes,
                )
        relay = OutboxRelay(pool, SCHEMA, producer, "test-relay", Settings(outbox_batch=1))

        def gauge(name: str) -> float | None:
            return REGISTRY.get_sample_value(name, {"service": "test-relay"})

        age, pending = "acoflow_outbox_oldest_age_seconds", "acoflow_outbox_pending"

        assert await relay.relay_once() == 1
        assert 600 <= (gauge(age) or 0) < 660  # the ten-minute-old event went first
        assert gauge(pending) == 1  # a full batch: more may wait
        assert await relay.relay_once() == 1
        assert 180 <= (gauge(age) or 0) < 240
        assert await relay.relay_once() == 0
        assert gauge(age) == 0
        assert gauge(pending) == 0
    finally:
        await producer.stop()
        await pool.close()
