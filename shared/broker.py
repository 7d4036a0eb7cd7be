"""The broker side every client shares: the FastStream broker, subscriber options, topic creation and the
producer (no database code: that is the consumer's and the outbox's)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware

from shared.metrics import REGISTRY
from shared.settings import Settings
from shared.topics import ALL_TOPICS, TopicSpec


def make_broker(settings: Settings, service: str) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"acoflow-{service}",
        middlewares=[KafkaPrometheusMiddleware(registry=REGISTRY, app_name=service)],
        logger=logging.getLogger(f"acoflow.{service}.broker"),
        graceful_timeout=settings.shutdown_timeout_s,
    )


COLD_FETCH_MIN_BYTES = 1024 * 1024


def batch_options(
    settings: Settings, topic: TopicSpec, group_id: str, max_records: int | None = None, *, hot: bool | None = None
) -> dict[str, Any]:
    """Subscriber options shared by every consumer: manual-commit semantics through FastStream's
    NACK_ON_ERROR policy (offsets are committed only after the handler, and so the database, succeeded;
    an exception seeks back and the batch is read again)."""
    quick = topic.hot if hot is None else hot
    return {
        "batch": True,
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_records": max_records or settings.batch_max_records,
        "batch_timeout_ms": settings.batch_timeout_ms,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms if quick else settings.cold_fetch_max_wait_ms,
        # Tansu answers a fetch as soon as it has min_bytes: with 1 a topic that is always busy (the claims a
        # counting consumer follows) is fetched, and its batch committed, continuously however long the wait.
        "fetch_min_bytes": 1 if quick else COLD_FETCH_MIN_BYTES,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "decoder": raw_records,
    }


async def raw_records(msg: Any) -> list[ConsumerRecord[Any, Any]]:
    """Hand the handler the records themselves: each one is parsed (and, if bad, rejected) on its own."""
    raw = msg.raw_message
    return list(raw) if isinstance(raw, tuple) else [raw]


async def ensure_topics(
    bootstrap: str, topics: Sequence[TopicSpec] = ALL_TOPICS, timeout_s: float = 30, partitions: int | None = None
) -> None:
    """Create the topics the broker lacks, each with `partitions` (Settings.topic_partitions) or its own count."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t.name not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [NewTopic(t.name, num_partitions=partitions or t.partitions, replication_factor=1) for t in missing]
                    )
            return
        except (KafkaError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


def make_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    # Tansu refuses idempotent producers; exactly-once comes from event-id dedupe at every consumer.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
    )


async def publish_all(
    producer: AIOKafkaProducer,
    items: Sequence[tuple[str, str, bytes]],
    sign: Callable[[bytes], list[tuple[str, bytes]]] | None = None,
) -> None:
    """Send (topic, key, value) items and wait until the broker acknowledged every one; `sign` gives each one's
    signature headers (internal events)."""
    futures = [
        await producer.send(topic, value=value, key=key.encode(), headers=sign(value) if sign else None)
        for topic, key, value in items
    ]
    if futures:
        await asyncio.gather(*futures)
