"""The batch consumer that applies events exactly once (dedupe and effects in one transaction, offsets after
commit), isolates a record that cannot be applied, and the refusals it writes for bad records."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from pydantic import BaseModel

from shared.db import claim_new_events
from shared.envelope import Envelope, EventRejected, EventSpec, Reason, new_envelope, parse_event
from shared.events import DEAD_LETTER, DeadLetter, RejectReason
from shared.logging import bind_message_context, clear_message_context, get_logger
from shared.loops import WorkLoop
from shared.metrics import EVENTS_DUPLICATE, EVENTS_PROCESSED, EVENTS_REJECTED
from shared.signing import EventKeys
from shared.topics import DEADLETTER, TopicSpec
from shared.unit_of_work import Outgoing, UnitOfWork, UnitsOfWork

log = get_logger(__name__)
P = TypeVar("P", bound=BaseModel)


# A rejected message is kept whole up to this size; beyond, its head is kept (with its full size), so the
# rejection itself still fits under the event size limit and lands where operators look.
MAX_KEPT_ORIGINAL = 256 * 1024

# How long a batch is held while the database is away before it is handed back to be fetched again: well under
# the consumer's max.poll.interval (300 s), past which the group would count the consumer as gone.
TRANSIENT_WAIT_S = 60.0


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


# An apply step: reads and writes through the unit of work's connection and publishes what it produces.
Apply = Callable[[UnitOfWork, list[Parsed[P]]], Awaitable[None]]
RejectBuilder = Callable[[ConsumerRecord[Any, Any], list[Reason]], tuple[TopicSpec, str, Envelope[Any]]]


class BatchConsumer(Generic[P]):
    """Applies one topic's batches exactly once.

    Per batch: parse every record (a bad one becomes a rejection, the rest flow on); in one transaction
    record the event ids, drop those already processed, apply the new ones, which publish what they produce
    through the unit of work; return, so FastStream commits the offsets. An exception leaves them uncommitted."""

    def __init__(
        self,
        *,
        service: str,
        schema: str,
        spec: EventSpec[P],
        topic: TopicSpec,
        units: UnitsOfWork,
        apply: Apply[P],
        on_committed: Callable[[], None] = lambda: None,
        reject: RejectBuilder | None = None,
        dedupe_by_id: bool = True,
        receipt: Callable[[list[Parsed[P]]], Outgoing] | None = None,
        keys: EventKeys | None = None,
    ) -> None:
        self.service = service
        self.schema = schema
        self.spec = spec
        self.topic = topic
        self._units = units
        self._apply = apply
        self._on_committed = on_committed
        self._reject = reject or self._dead_letter
        # False where every effect is keyed by a natural key the apply step upserts on (claim lines by
        # line_key): that key is the dedupe, and recording each event id as well only costs a write per event.
        self._dedupe_by_id = dedupe_by_id
        # Events that confirm what this consumer holds, for every record read (applied now or before), enqueued
        # in the same transaction: a producer waiting for them re-sends what was lost on the way.
        self._receipt = receipt
        # Internal topics take only events signed by a service (shared/signing.py).
        self._keys = keys if topic.internal else None

    def _dead_letter(self, record: ConsumerRecord[Any, Any], reasons: list[Reason]) -> tuple[TopicSpec, str, Envelope[Any]]:
        key, fields = refusal(record, reasons)
        payload = DeadLetter(consumer=self.service, **fields)
        return DEADLETTER, key, new_envelope(DEAD_LETTER, payload, self.service, event_id=rejection_id(record))

    async def _apply_in_one(self, good: list[Parsed[P]], rejects: Outgoing) -> list[Parsed[P]]:
        """The batch in one transaction: record the event ids, drop those already processed, apply the rest and
        enqueue what they produce (and the batch's rejections). Returns what was new."""
        async with self._units() as uow:
            if self._dedupe_by_id:
                ids = [p.envelope.event_id for p in good]
                fresh = self._first_of_each_id(good, await claim_new_events(uow.conn, self.schema, ids))
            else:
                # The apply step dedupes by its natural key, and two different events may share an id (a producer
                # outside our control): each one reaches it, to be applied, counted as a repeat or refused there.
                fresh = list(good)
            if fresh:
                await self._apply(uow, fresh)
            uow.publish_all(rejects)
            if self._receipt is not None and good:
                uow.publish_all(self._receipt(good))
        return fresh

    @staticmethod
    def _first_of_each_id(good: list[Parsed[P]], new_ids: set[Any]) -> list[Parsed[P]]:
        fresh: list[Parsed[P]] = []
        seen: set[Any] = set()
        for p in good:
            if p.envelope.event_id in new_ids and p.envelope.event_id not in seen:
                seen.add(p.envelope.event_id)
                fresh.append(p)
        return fresh

    async def _apply_one_by_one(self, good: list[Parsed[P]], rejects: Outgoing) -> list[Parsed[P]]:
        """After a batch failed on its data: each record in its own transaction, up to MAX_APPLY_ATTEMPTS times;
        one that still fails is quarantined (rejected or dead-lettered with the reason) and the rest go on."""
        if rejects:
            async with self._units() as uow:
                uow.publish_all(rejects)
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
        async with self._units() as uow:
            if self._dedupe_by_id:
                await claim_new_events(uow.conn, self.schema, [p.envelope.event_id])
            uow.publish_all([self._reject(record, [reason]), *receipts])

    async def _apply_waiting(self, good: list[Parsed[P]], rejects: Outgoing) -> list[Parsed[P]]:
        """Apply the batch; while the database (or broker) is away, hold it and try again with a backoff, one
        log line a try, rather than hand it back to be fetched and failed again at once (a traceback each time)."""
        waited, delay = 0.0, 0.5
        while True:
            try:
                return await self._apply_in_one(good, rejects)
            except Exception as exc:
                if not is_transient(exc) or waited >= TRANSIENT_WAIT_S:
                    raise
                log.warning("apply_waiting", topic=self.topic.name, error=type(exc).__name__, retry_in_s=delay)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)

    async def handle(self, records: list[ConsumerRecord[Any, Any]]) -> None:
        good: list[Parsed[P]] = []
        rejects: Outgoing = []
        for record in records:
            forged = None if self._keys is None else self._keys.check(record.value, record.headers)
            if forged is not None:
                bind_message_context(record.topic, record.partition, record.offset)
                log.warning("event_refused", reason=forged)
                clear_message_context()
                EVENTS_REJECTED.labels(self.service, self.topic.name, "signature").inc()
                rejects.append(self._reject(record, [Reason("headers.acoflow-signature", "signature", forged)]))
                continue
            try:
                good.append(Parsed(record, parse_event(self.spec, record.value)))
            except EventRejected as exc:
                bind_message_context(record.topic, record.partition, record.offset)
                log.warning("event_rejected", reasons=[r.as_dict() for r in exc.reasons][:5])
                clear_message_context()
                EVENTS_REJECTED.labels(self.service, self.topic.name, exc.reasons[0].code).inc()
                rejects.append(self._reject(record, exc.reasons))
        try:
            fresh = await self._apply_waiting(good, rejects)
        except Exception as exc:
            if is_transient(exc):
                raise  # the database or broker is still away: the whole batch is read again, nothing is lost
            log.warning("batch_apply_failed", topic=self.topic.name, error=type(exc).__name__, detail=str(exc)[:200])
            fresh = await self._apply_one_by_one(good, rejects)
        EVENTS_PROCESSED.labels(self.service, self.topic.name).inc(len(fresh))
        if len(good) > len(fresh):
            EVENTS_DUPLICATE.labels(self.service, self.topic.name).inc(len(good) - len(fresh))
        if fresh or rejects or (good and self._receipt is not None):
            self._on_committed()


@dataclass(frozen=True)
class Subscription(Generic[P]):
    """Everything about one consumer, declared in one place: what it reads (topic and event), what it does
    (apply), and its policies. A hot topic's subscription reads in a consumer group of its own (the service's
    name, or "<service>.<group>"); the others share the service's "<service>.cold" (ServiceRuntime.subscribe).
    The ack policy is NACK_ON_ERROR for every subscription (shared/broker.py: batch_options)."""

    spec: EventSpec[P]
    topic: TopicSpec
    apply: Apply[P]
    group: str | None = None
    max_records: int | None = None
    reject: RejectBuilder | None = None
    # False where every effect is keyed by a natural key the apply step upserts on.
    dedupe_by_id: bool = True
    # A confirmed hop's consumer side: the receipts for what it read (shared/confirmations.py).
    receipt: Callable[[list[Parsed[P]]], Outgoing] | None = None
    # A loop with work a batch may leave behind (settlement's positions), woken after each commit.
    wakes: WorkLoop | None = None
