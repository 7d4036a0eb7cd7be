"""Kafka helpers: the FastStream broker, topic creation, the producer, the outbox relay, and the batch
consumer that applies events exactly once (dedupe and effects in one transaction, offsets after commit)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from pydantic import BaseModel

from shared.db import Conn, QueueVacuum, claim_new_events, enqueue
from shared.envelope import Envelope, EventRejected, EventSpec, Reason, new_envelope, parse_event
from shared.events import DEAD_LETTER, DeadLetter, RejectReason
from shared.logging import bind_message_context, clear_message_context, get_logger
from shared.metrics import (
    EVENTS_DUPLICATE,
    EVENTS_PROCESSED,
    EVENTS_REJECTED,
    OUTBOX_PENDING,
    OUTBOX_PUBLISHED,
    REGISTRY,
)
from shared.settings import Settings
from shared.topics import ALL_TOPICS, DEADLETTER, TopicSpec

log = get_logger(__name__)
P = TypeVar("P", bound=BaseModel)


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


async def publish_all(producer: AIOKafkaProducer, items: Sequence[tuple[str, str, bytes]]) -> None:
    """Send (topic, key, value) items and wait until the broker acknowledged every one."""
    futures = [await producer.send(topic, value=value, key=key.encode()) for topic, key, value in items]
    if futures:
        await asyncio.gather(*futures)


MAX_BACKLOG_REST_S = 1.0


class WorkLoop:
    """Runs `step` over and over while it finds work (it returns how much it did, up to `batch`), then waits
    for a wake-up or `idle_s`. A failing step (broker or database away) is logged and tried again.

    `backlog_rest`: after a pass that did at least half a batch (a backlog), rest this many times as long as
    the pass took, so what arrives meanwhile is done in one pass rather than spread over several. For work
    that is recomputed rather than consumed (a contract's position), that halves the recomputing under a
    backlog; a pass of less, as a steady trickle makes, is followed at once."""

    def __init__(
        self, name: str, step: Callable[[], Awaitable[int]], batch: int, idle_s: float, backlog_rest: float = 0.0
    ) -> None:
        self.name = name
        self._step = step
        self._batch = batch
        self._idle = idle_s
        self._backlog_rest = backlog_rest
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                # Cleared before the pass, so a commit that wakes us during it is not lost.
                self._wake.clear()
                started = time.monotonic()
                done = await self._step()
                if self._backlog_rest and done >= self._batch / 2:
                    await asyncio.sleep(min(MAX_BACKLOG_REST_S, (time.monotonic() - started) * self._backlog_rest))
                if done < self._batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._idle)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("work_loop_retry", loop=self.name, error=type(exc).__name__, detail=str(exc)[:200])
                await asyncio.sleep(1.0)


class OutboxRelay(WorkLoop):
    """Publishes a service's outbox to Kafka in id order and deletes what the broker acknowledged.
    Rows are locked (SKIP LOCKED) while in flight so scaled-out instances never send the same row at once;
    a crash between publish and delete re-sends the row, which consumers drop by event id."""

    def __init__(self, pool: asyncpg.Pool, schema: str, producer: AIOKafkaProducer, service: str, settings: Settings):
        super().__init__(f"outbox-{schema}", self.relay_once, settings.outbox_batch, settings.outbox_idle_sleep_s)
        self._pool = pool
        self._schema = schema
        self._producer = producer
        self._service = service
        self._batch = settings.outbox_batch
        self._vacuum = QueueVacuum(lambda: pool, f"{schema}.outbox")

    async def relay_once(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT id, topic, key, value FROM {self._schema}.outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch,
            )
            # A pass that found fewer rows than it may take saw the whole outbox (but rows another instance
            # holds): the gauge is what it left, without a count(*) on every pass.
            OUTBOX_PENDING.labels(self._service).set(0 if len(rows) < self._batch else len(rows))
            if not rows:
                return 0
            await publish_all(self._producer, [(r["topic"], r["key"], bytes(r["value"])) for r in rows])
            await conn.execute(f"DELETE FROM {self._schema}.outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        for r in rows:
            OUTBOX_PUBLISHED.labels(self._service, r["topic"]).inc()
        await self._vacuum.deleted(len(rows))
        return len(rows)


# A rejected message is kept whole up to this size; beyond, its head is kept (with its full size), so the
# rejection itself still fits under the event size limit and lands where operators look.
MAX_KEPT_ORIGINAL = 256 * 1024


REJECTION_NAMESPACE = uuid.UUID("0f6b1d8e-8f5e-4b8a-9a52-3c1f4e2a7d90")


def rejection_id(record: ConsumerRecord[Any, Any]) -> uuid.UUID:
    """The same record refused again (a batch redelivered after a crash) gives the same rejection event, so it
    is kept once; the bytes are part of it because a broker that lost its storage reuses offsets."""
    digest = hashlib.sha256(record.value or b"").hexdigest()
    return uuid.uuid5(REJECTION_NAMESPACE, f"{record.topic}|{record.partition}|{record.offset}|{digest}")


def refusal(record: ConsumerRecord[Any, Any], reasons: list[Reason]) -> tuple[str, dict[str, Any]]:
    """(key, fields) that every refusal of a record carries: where it was read, why, and what it was."""
    text, encoding, size = original_text(record.value)
    fields = {
        "source_topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "reasons": tuple(RejectReason(**r.as_dict()) for r in reasons),
        "original": text,
        "original_encoding": encoding,
        "original_size": size,
    }
    return (record.key.decode(errors="replace") if record.key else "unknown"), fields


def original_text(raw: bytes | None) -> tuple[str, str, int | None]:
    """(text, encoding, full size when cut) of a message as received."""
    raw = raw or b""
    size = len(raw) if len(raw) > MAX_KEPT_ORIGINAL else None
    head = raw[:MAX_KEPT_ORIGINAL]
    try:
        return head.decode("utf-8"), "utf-8", size
    except UnicodeDecodeError:
        return base64.b64encode(head).decode(), "base64", size


@dataclass(frozen=True)
class Parsed(Generic[P]):
    record: ConsumerRecord[Any, Any]
    envelope: Envelope[P]


Outgoing = list[tuple[TopicSpec, str, Envelope[Any]]]
# A record whose apply fails on its data is tried this many times, on its own, before it is quarantined.
MAX_APPLY_ATTEMPTS = 3
# SQLSTATE classes of failures that are the database's, not the data's: connection, transaction rollback
# (serialization, deadlock), insufficient resources, operator intervention, system error.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def is_transient(exc: BaseException) -> bool:
    """Whether a failure says nothing about the data (the database or network is away): retry the batch as is."""
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | KafkaError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in TRANSIENT_SQLSTATE_CLASSES
    return False


RejectBuilder = Callable[[ConsumerRecord[Any, Any], list[Reason]], tuple[TopicSpec, str, Envelope[Any]]]


class BatchConsumer(Generic[P]):
    """Applies one topic's batches exactly once.

    Per batch: parse every record (a bad one becomes a rejection, the rest flow on); in one transaction
    record the event ids, drop those already processed, apply the new ones and enqueue the outgoing
    events; return, so FastStream commits the offsets. An exception leaves the offsets uncommitted."""

    def __init__(
        self,
        *,
        service: str,
        schema: str,
        spec: EventSpec[P],
        topic: TopicSpec,
        pool: Callable[[], asyncpg.Pool],
        apply: Callable[[Conn, list[Parsed[P]]], Awaitable[list[tuple[TopicSpec, str, Envelope[Any]]]]],
        on_committed: Callable[[], None] = lambda: None,
        reject: RejectBuilder | None = None,
        dedupe_by_id: bool = True,
        receipt: Callable[[list[Parsed[P]]], Outgoing] | None = None,
    ) -> None:
        self.service = service
        self.schema = schema
        self.spec = spec
        self.topic = topic
        self._pool = pool
        self._apply = apply
        self._on_committed = on_committed
        self._reject = reject or self._dead_letter
        # False where every effect is keyed by a natural key the apply step upserts on (claim lines by
        # line_key): that key is the dedupe, and recording each event id as well only costs a write per event.
        self._dedupe_by_id = dedupe_by_id
        # Events that confirm what this consumer holds, for every record read (applied now or before), enqueued
        # in the same transaction: a producer waiting for them re-sends what was lost on the way.
        self._receipt = receipt

    def _dead_letter(self, record: ConsumerRecord[Any, Any], reasons: list[Reason]) -> tuple[TopicSpec, str, Envelope[Any]]:
        key, fields = refusal(record, reasons)
        payload = DeadLetter(consumer=self.service, **fields)
        return DEADLETTER, key, new_envelope(DEAD_LETTER, payload, self.service, event_id=rejection_id(record))

    async def _apply_in_one(self, good: list[Parsed[P]], rejects: Outgoing) -> list[Parsed[P]]:
        """The batch in one transaction: record the event ids, drop those already processed, apply the rest and
        enqueue what they produce (and the batch's rejections). Returns what was new."""
        async with self._pool().acquire() as conn, conn.transaction():
            ids = [p.envelope.event_id for p in good]
            new_ids = await claim_new_events(conn, self.schema, ids) if self._dedupe_by_id else set(ids)
            fresh: list[Parsed[P]] = []
            seen: set[Any] = set()
            for p in good:
                if p.envelope.event_id in new_ids and p.envelope.event_id not in seen:
                    seen.add(p.envelope.event_id)
                    fresh.append(p)
            outgoing = await self._apply(conn, fresh) if fresh else []
            receipts = self._receipt(good) if self._receipt is not None and good else []
            await enqueue(conn, self.schema, [*rejects, *outgoing, *receipts])
        return fresh

    async def _apply_one_by_one(self, good: list[Parsed[P]], rejects: Outgoing) -> list[Parsed[P]]:
        """After a batch failed on its data: each record in its own transaction, up to MAX_APPLY_ATTEMPTS times;
        one that still fails is quarantined (rejected or dead-lettered with the reason) and the rest go on."""
        if rejects:
            async with self._pool().acquire() as conn, conn.transaction():
                await enqueue(conn, self.schema, rejects)
        fresh: list[Parsed[P]] = []
        for p in good:
            for attempt in range(1, MAX_APPLY_ATTEMPTS + 1):
                try:
                    fresh += await self._apply_in_one([p], [])
                    break
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    if attempt < MAX_APPLY_ATTEMPTS:
                        await asyncio.sleep(0.05 * attempt)
                        continue
                    await self._quarantine(p, exc)
        return fresh

    async def _quarantine(self, p: Parsed[P], exc: Exception) -> None:
        record = p.record
        bind_message_context(record.topic, record.partition, record.offset, str(p.envelope.event_id))
        log.error("event_quarantined", error=type(exc).__name__, detail=str(exc)[:300], attempts=MAX_APPLY_ATTEMPTS)
        clear_message_context()
        EVENTS_REJECTED.labels(self.service, self.topic.name, "apply_failed").inc()
        first_line = (str(exc).splitlines() or [""])[0][:500]
        reason = Reason("payload", "apply_failed", f"could not be applied ({type(exc).__name__}: {first_line})")
        receipts = self._receipt([p]) if self._receipt is not None else []  # held, as a dead letter: not re-sent
        async with self._pool().acquire() as conn, conn.transaction():
            if self._dedupe_by_id:
                await claim_new_events(conn, self.schema, [p.envelope.event_id])
            await enqueue(conn, self.schema, [self._reject(record, [reason]), *receipts])

    async def handle(self, records: list[ConsumerRecord[Any, Any]]) -> None:
        good: list[Parsed[P]] = []
        rejects: Outgoing = []
        for record in records:
            try:
                good.append(Parsed(record, parse_event(self.spec, record.value)))
            except EventRejected as exc:
                bind_message_context(record.topic, record.partition, record.offset)
                log.warning("event_rejected", reasons=[r.as_dict() for r in exc.reasons][:5])
                clear_message_context()
                EVENTS_REJECTED.labels(self.service, self.topic.name, exc.reasons[0].code).inc()
                rejects.append(self._reject(record, exc.reasons))
        try:
            fresh = await self._apply_in_one(good, rejects)
        except Exception as exc:
            if is_transient(exc):
                raise  # the database or broker is away: the whole batch is read again, nothing is lost
            log.warning("batch_apply_failed", topic=self.topic.name, error=type(exc).__name__, detail=str(exc)[:200])
            fresh = await self._apply_one_by_one(good, rejects)
        EVENTS_PROCESSED.labels(self.service, self.topic.name).inc(len(fresh))
        if len(good) > len(fresh):
            EVENTS_DUPLICATE.labels(self.service, self.topic.name).inc(len(good) - len(fresh))
        if fresh or rejects or (good and self._receipt is not None):
            self._on_committed()
