"""The outbox: events written in the same transaction as the change they describe, and the relay that
publishes them to Kafka in order and deletes what the broker acknowledged."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.broker import publish_all
from shared.db import Conn, QueueVacuum
from shared.envelope import Envelope
from shared.loops import WorkLoop
from shared.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PENDING, OUTBOX_PUBLISHED
from shared.settings import Settings
from shared.signing import EventKeys
from shared.topics import TopicSpec


def outbox_insert(schema: str, topics: str, keys: str, ids: str, values: str) -> str:
    """The outbox INSERT over four SQL array expressions (text[], text[], uuid[], bytea[]), rows in array order
    (WITH ORDINALITY), so the relay sends them in that order. `enqueue` runs it on its own; a statement that
    writes a service's rows and the events about them at once ends with it, and saves a round trip."""
    return (
        f"INSERT INTO {schema}.outbox (topic, key, event_id, value)"
        f" SELECT t, k, e, v FROM unnest({topics}, {keys}, {ids}, {values}) WITH ORDINALITY AS r(t, k, e, v, n)"
        " ORDER BY n"
    )


async def enqueue(conn: Conn, schema: str, items: Iterable[tuple[TopicSpec, str, Envelope[Any]]]) -> int:
    """Write outgoing events to the outbox in the caller's transaction; the relay publishes them."""
    topics: list[str] = []
    keys: list[str] = []
    ids: list[uuid.UUID] = []
    values: list[bytes] = []
    for topic, key, env in items:
        topics.append(topic.name)
        keys.append(key)
        ids.append(env.event_id)
        values.append(env.to_bytes())
    if topics:
        # One statement for the batch (executemany runs one per row).
        await conn.execute(
            outbox_insert(schema, "$1::text[]", "$2::text[]", "$3::uuid[]", "$4::bytea[]"), topics, keys, ids, values
        )
    return len(topics)


class OutboxRelay(WorkLoop):
    """Publishes a service's outbox to Kafka in id order and deletes what the broker acknowledged.
    Rows are locked (SKIP LOCKED) while in flight so scaled-out instances never send the same row at once;
    a crash between publish and delete re-sends the row, which consumers drop by event id."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        producer: AIOKafkaProducer,
        service: str,
        settings: Settings,
        keys: EventKeys | None = None,
    ):
        super().__init__(f"outbox-{schema}", self.relay_once, settings.outbox_batch, settings.outbox_idle_sleep_s)
        self._pool = pool
        self._schema = schema
        self._producer = producer
        self._service = service
        self._batch = settings.outbox_batch
        self._vacuum = QueueVacuum(lambda: pool, f"{schema}.outbox")
        self._sign = None if keys is None else keys.sign

    async def relay_once(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT id, topic, key, value, extract(epoch FROM clock_timestamp() - created_at)::float8 AS age"
                f" FROM {self._schema}.outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch,
            )
            # A pass that found fewer rows than it may take saw the whole outbox (but rows another instance
            # holds): the gauge is what it left, without a count(*) on every pass.
            OUTBOX_PENDING.labels(self._service).set(0 if len(rows) < self._batch else len(rows))
            # Set before publishing, so a relay that cannot reach the broker still shows its backlog ageing.
            OUTBOX_OLDEST_AGE.labels(self._service).set(rows[0]["age"] if rows else 0)
            if not rows:
                return 0
            await publish_all(self._producer, [(r["topic"], r["key"], bytes(r["value"])) for r in rows], self._sign)
            await conn.execute(f"DELETE FROM {self._schema}.outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        for r in rows:
            OUTBOX_PUBLISHED.labels(self._service, r["topic"]).inc()
        await self._vacuum.deleted(len(rows))
        return len(rows)
