"""The unit of work: one transaction, the events it publishes, and the wake-up of whoever sends them.

Application code (consumers' apply steps, HTTP handlers, loops) gets a UnitOfWork, reads and writes through its
connection, and publishes events with `publish`; when the work ends without an error the events go to the
outbox in the same transaction (events on a confirmed hop are kept until confirmed), the transaction commits,
and the outbox relay is woken. It is the one way events reach the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from shared.db import Conn
from shared.envelope import Envelope
from shared.outbox import enqueue, outbox_insert
from shared.topics import TopicSpec

Outgoing = list[tuple[TopicSpec, str, Envelope[Any]]]
# Called with the transaction's events before they are written (confirmed hops keep theirs).
BeforeFlush = Callable[[Conn, str, Outgoing], Awaitable[None]]


class UnitOfWork:
    def __init__(self, conn: Conn, schema: str, before_flush: Sequence[BeforeFlush] = ()) -> None:
        self.conn = conn
        self.schema = schema
        self._before_flush = before_flush
        self._events: Outgoing = []
        self._raw: list[tuple[str, str, Any, bytes]] = []
        self.published = 0

    def publish(self, topic: TopicSpec, key: str, envelope: Envelope[Any]) -> None:
        self._events.append((topic, key, envelope))

    def publish_all(self, events: Outgoing) -> None:
        self._events.extend(events)

    def republish(self, topic: str, key: str, event_id: Any, value: bytes) -> None:
        """An event sent before, again as it was (same id and bytes): its consumer dedupes it."""
        self._raw.append((topic, key, event_id, value))

    def wrote_outbox(self, count: int) -> None:
        """Events a statement of the caller's own wrote to the outbox along with its rows (settlement stores a
        pass's positions and their events in one statement): counted, so the relay is woken."""
        self.published += count

    @property
    def events(self) -> tuple[tuple[TopicSpec, str, Envelope[Any]], ...]:
        """What has been published and not flushed yet."""
        return tuple(self._events)

    async def flush(self) -> None:
        events, self._events = self._events, []
        if events:
            for hook in self._before_flush:
                await hook(self.conn, self.schema, events)
            await enqueue(self.conn, self.schema, events)
        raw, self._raw = self._raw, []
        if raw:
            await self.conn.execute(
                outbox_insert(self.schema, "$1::text[]", "$2::text[]", "$3::uuid[]", "$4::bytea[]"),
                [r[0] for r in raw],
                [r[1] for r in raw],
                [r[2] for r in raw],
                [r[3] for r in raw],
            )
        self.published += len(events) + len(raw)


class UnitsOfWork:
    """Makes a service's units of work: a pooled connection, a transaction, and a relay wake-up after a commit
    that published something (`on_commit`)."""

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        schema: str,
        on_commit: Callable[[], None] = lambda: None,
        before_flush: Sequence[BeforeFlush] = (),
    ) -> None:
        self._pool = pool
        self.schema = schema
        self._on_commit = on_commit
        self.before_flush = list(before_flush)

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[UnitOfWork]:
        async with self._pool().acquire() as conn, conn.transaction():
            uow = UnitOfWork(conn, self.schema, self.before_flush)
            yield uow
            await uow.flush()
        if uow.published:
            self._on_commit()

    def on(self, conn: Conn) -> UnitOfWork:
        """A unit of work on a connection whose transaction the caller holds (tests, tools): flush it yourself."""
        return UnitOfWork(conn, self.schema, self.before_flush)
