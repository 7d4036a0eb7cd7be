"""The broker side every client shares: the FastStream broker, subscriber options, topic creation and the
producer (no database code: that is the consumer's and the outbox's)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.metrics import CONSUMER_LAG, REGISTRY
from shared.settings import Settings
from shared.topics import ALL_TOPICS, TopicSpec


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile, keyfile=settings.kafka_ssl_keyfile
    )
    return context


def client_security(settings: Settings | None) -> dict[str, Any]:
    """aiokafka options that authenticate a client (producer, admin) as the settings say."""
    if settings is None or settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = _ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


def broker_security(settings: Settings) -> BaseSecurity | None:
    """The same for FastStream's broker (its consumers)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = _ssl_context(settings)
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    user, password = settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value()
    kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}[settings.kafka_sasl_mechanism]
    return kind(username=user, password=password, ssl_context=context, use_ssl=protocol == "SASL_SSL")


def make_broker(settings: Settings, service: str) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        security=broker_security(settings),
        client_id=f"acoflow-{service}",
        middlewares=[KafkaPrometheusMiddleware(registry=REGISTRY, app_name=service)],
        logger=logging.getLogger(f"acoflow.{service}.broker"),
        graceful_timeout=settings.shutdown_timeout_s,
        acks="all",
        enable_idempotence=True,
        # Topics are made with their partitions and configs by ensure_topics (or the installer), never with
        # FastStream's defaults by a subscriber that finds one missing.
        allow_auto_create_topics=False,
    )


# FastStream's batch subscriber sleeps as long again after a getmany that found nothing, and records arriving
# meanwhile wait out the sleep: a getmany waits until records come (the fetch below wakes it), so it never does.
GETMANY_WAIT_MS = 24 * 3600 * 1000


COLD_FETCH_MIN_BYTES = 1024 * 1024


class FetchPace:
    """How a consumer fetches: while quiet, a fetch is answered as soon as anything arrives (fetch.min.bytes 1)
    and otherwise waits `settings.fetch_max_wait_ms` in the broker, so a line finds every consumer awake and an
    idle consumer costs next to nothing; once batches come closer than twice the pace apart (a steady stream),
    a fetch waits up to the pace (settings.batch_pace_s on the claim-to-position path, cold_batch_pace_s off it)
    for fetch_min_bytes (1 MiB off the path), so the broker hands over the stream in batches rather than
    a few records a fetch; quiet for five paces, it is back to the first. aiokafka reads both settings as it
    builds each fetch and has no public way to change them: `batch()` sets its fetcher's."""

    def __init__(self, settings: Settings, subscriber: Any, *, hot: bool) -> None:
        self._subscriber = subscriber  # FastStream's: its aiokafka consumer exists once it has started
        self._pace = settings.batch_pace_s if hot else settings.cold_batch_pace_s
        self._idle = (settings.fetch_max_wait_ms, 1)
        self._busy = (max(1, int(self._pace * 1000)), settings.fetch_min_bytes if hot else COLD_FETCH_MIN_BYTES)
        self._last = -math.inf
        self._quiet: asyncio.TimerHandle | None = None

    def batch(self) -> None:
        """At each batch the consumer is handed: busy when it follows the last one closely, idle after a quiet spell."""
        now = time.monotonic()
        if now - self._last < 2 * self._pace:
            self._set(self._busy)
        self._last = now
        if self._quiet is not None:
            self._quiet.cancel()
        self._quiet = asyncio.get_running_loop().call_later(5 * self._pace, self._set, self._idle)

    def _set(self, mode: tuple[int, int]) -> None:
        fetcher = getattr(getattr(self._subscriber, "consumer", None), "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes = mode


def partition_of(key: str, partitions: int) -> int:
    """The partition a message with this key goes to: the default partitioner's choice (murmur2, as aiokafka
    and the Java client compute it)."""
    return _partition(key.encode(), partitions)


@functools.lru_cache(maxsize=1 << 16)
def _partition(key: bytes, partitions: int) -> int:
    # Remembered: aiokafka's murmur2 is pure Python, and claims_ingest asks for every spend delta's contract and
    # every producer for every message's key.
    digest: int = murmur2(key)
    return (digest & 0x7FFFFFFF) % partitions


def batch_options(settings: Settings, group_id: str, max_records: int | None = None) -> dict[str, Any]:
    """Subscriber options shared by every consumer: manual-commit semantics through FastStream's
    NACK_ON_ERROR policy (offsets are committed only after the handler, and so the database, succeeded;
    an exception seeks back and the batch is read again). Quiet to start with; FetchPace changes how it fetches."""
    return {
        "batch": True,
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_records": max_records or settings.batch_max_records,
        "batch_timeout_ms": GETMANY_WAIT_MS,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "fetch_min_bytes": 1,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "decoder": RawRecords(group_id),
        "listener": ForgetRevokedLag(group_id),
    }


class ForgetRevokedLag(ConsumerRebalanceListener):  # type: ignore[misc]
    """A partition that moved to another instance is that instance's to report: this one stops reporting a lag
    it no longer sees, so a rebalance cannot leave a stale figure behind."""

    def __init__(self, group_id: str):
        self._group = group_id

    async def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self._group, tp.topic, str(tp.partition))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


class RawRecords:
    """Hands the handler the records themselves (each one is parsed, and if bad rejected, on its own) and
    reports the group's lag on each partition in the batch: what remains past its last record, from the
    high watermark the fetch brought (no extra request)."""

    def __init__(self, group_id: str):
        self._group = group_id

    async def __call__(self, msg: Any) -> list[ConsumerRecord[Any, Any]]:
        raw = msg.raw_message
        records: list[ConsumerRecord[Any, Any]] = list(raw) if isinstance(raw, tuple) else [raw]
        last: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            last[tp] = max(r.offset, last.get(tp, -1))
        consumer = getattr(msg, "consumer", None)
        for tp, offset in last.items():
            highwater = consumer.highwater(tp) if consumer is not None else None
            if highwater is not None:
                CONSUMER_LAG.labels(self._group, tp.topic, str(tp.partition)).set(max(highwater - offset - 1, 0))
        return records


def topic_configs(topic: TopicSpec, settings: Settings | None) -> dict[str, str]:
    """What a topic is created with beyond its partitions: compaction where topics.py says so (contracts.v1,
    keys.v1 keep every key's latest event for ever), otherwise the retention; min.insync.replicas from settings."""
    configs = {"cleanup.policy": "compact"} if topic.compacted else {}
    if settings is not None:
        if not topic.compacted:
            configs["retention.ms"] = str(settings.topic_retention_ms)
        if settings.topic_replication_factor > 1:
            configs["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
    return configs


async def ensure_topics(
    bootstrap: str,
    topics: Sequence[TopicSpec] = ALL_TOPICS,
    timeout_s: float = 30,
    partitions: int | None = None,
    settings: Settings | None = None,
) -> None:
    """Create the topics the broker lacks, each with `partitions` (Settings.topic_partitions) or its own count,
    the settings' replication factor and its configs (topic_configs)."""
    deadline = time.monotonic() + timeout_s
    replication = 1 if settings is None else settings.topic_replication_factor
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_security(settings))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t.name not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(
                                t.name,
                                num_partitions=partitions or t.partitions,
                                replication_factor=replication,
                                topic_configs=topic_configs(t, settings),
                            )
                            for t in missing
                        ]
                    )
            return
        except (KafkaError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


def remembered_partition(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """The default partitioner's choice (murmur2 of the key; a random partition without one), with each key's
    hash remembered: a service sends the same contracts' and members' keys all day."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_partition(key, len(all_partitions))]


def make_producer(bootstrap: str, client_id: str, settings: Settings | None = None) -> AIOKafkaProducer:
    # Idempotent: a batch retried after a lost acknowledgement is written once. That covers one producer's
    # retries only; exactly-once across restarts comes from event-id dedupe at every consumer.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        partitioner=remembered_partition,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        **client_security(settings),
    )


async def publish_all(
    producer: AIOKafkaProducer,
    items: Sequence[tuple[str, str, bytes]],
    sign: Callable[[bytes], list[tuple[str, bytes]]] | None = None,
) -> None:
    """Send (topic, key, value) items and wait until the broker acknowledged every one; `sign` gives each one's
    signature headers (internal events). Items are put in record batches per partition here, in their order,
    and each batch is sent whole: aiokafka's send() costs a future and an accumulator lookup per message."""
    partitions: dict[str, list[int]] = {}
    batches: dict[tuple[str, int], list[tuple[bytes, bytes, list[tuple[str, bytes]] | None]]] = {}
    for topic, key, value in items:
        if topic not in partitions:
            partitions[topic] = sorted(await producer.partitions_for(topic))
        encoded = key.encode()
        partition = remembered_partition(encoded, partitions[topic], partitions[topic])
        batches.setdefault((topic, partition), []).append((encoded, value, sign(value) if sign else None))
    futures = []
    for (topic, partition), records in batches.items():
        batch = producer.create_batch()
        for key_bytes, value, headers in records:
            if batch.append(key=key_bytes, value=value, timestamp=None, headers=headers) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key_bytes, value=value, timestamp=None, headers=headers) is None:
                    raise ValueError(f"a message of {len(value)} bytes for {topic} does not fit in a record batch")
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    if futures:
        await asyncio.gather(*futures)
