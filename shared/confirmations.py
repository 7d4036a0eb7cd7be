"""Confirmed hops: events a broker may lose on their way are sent again until their consumer confirms them.

The producer keeps every event it sends on a confirmed hop, in the transaction that enqueues it, until a
receipt names it; an event still unconfirmed after `resend_after_s` goes back into the outbox as it was, with
its own event id, which the consumer dedupes (and confirms again). The consumer confirms every event it reads,
applied now or before, in the transaction that applies them (BatchConsumer's `receipt`). A broker that restarts
empty, or a message lost between an outbox and its consumer, so costs a delay, never an effect.

Hops: claims_ingest -> settlement (spend.v2, confirmed on spend.acks.v1) and contracts -> claims_ingest
(attribution.v1, confirmed on attribution.acks.v1)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.consumer import Parsed
from shared.db import Conn
from shared.envelope import Envelope, EventSpec, new_envelope
from shared.events import ATTRIBUTION_CHANGED, RECEIPT, SPEND_BATCH, Receipt
from shared.topics import ATTRIBUTION, ATTRIBUTION_ACKS, SPEND_ACKS, SPEND_BATCHES, TopicSpec
from shared.unit_of_work import Outgoing, UnitOfWork


@dataclass(frozen=True)
class ConfirmedHop:
    topic: TopicSpec
    receipts: TopicSpec
    spec: EventSpec[Any]
    # What an event carries, per contract (amount) and in items, for `acoflow reconcile`.
    summarize: Callable[[Envelope[Any]], dict[str, Any]]

    async def keep(self, conn: Conn, schema: str, outgoing: Outgoing) -> None:
        """Keep the events of this hop among `outgoing` until they are confirmed; call in the enqueuing transaction."""
        rows = [
            (env.event_id, self.topic.name, key, env.to_bytes(), self.summarize(env))
            for topic, key, env in outgoing
            if topic == self.topic and env.event_type == self.spec.event_type
        ]
        if rows:
            await conn.executemany(
                f"INSERT INTO {schema}.unconfirmed (event_id, topic, key, value, summary) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (event_id) DO NOTHING",
                rows,
            )

    def receipt(self, producer: str) -> Callable[[list[Parsed[Any]]], Outgoing]:
        """The consumer's side: a receipt for every event read (BatchConsumer's `receipt`)."""

        def build(parsed: list[Parsed[Any]]) -> Outgoing:
            ids = tuple(p.envelope.event_id for p in parsed)
            return [(self.receipts, producer, new_envelope(RECEIPT, Receipt(event_ids=ids), producer))]

        return build

    async def confirm(self, uow: UnitOfWork, batch: list[Parsed[Receipt]]) -> None:
        """The producer's receipt consumer: confirmed events are no longer kept."""
        ids = list({i for p in batch for i in p.envelope.payload.event_ids})
        await uow.conn.execute(
            f"DELETE FROM {uow.schema}.unconfirmed WHERE event_id = ANY($1::uuid[]) AND topic = $2", ids, self.topic.name
        )

    async def resend_due(self, uow: UnitOfWork, after_s: float, limit: int) -> int:
        """Publish the events unconfirmed for `after_s` again, as they were; returns how many."""
        rows = await uow.conn.fetch(
            f"UPDATE {uow.schema}.unconfirmed SET sent_at = now(), sends = sends + 1 WHERE event_id IN"
            f" (SELECT event_id FROM {uow.schema}.unconfirmed WHERE topic = $3"
            " AND sent_at < now() - make_interval(secs => $1)"
            " ORDER BY sent_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING event_id, key, value",
            after_s,
            limit,
            self.topic.name,
        )
        for r in rows:
            uow.republish(self.topic.name, r["key"], r["event_id"], bytes(r["value"]))
        return len(rows)


async def unconfirmed(conn: Conn, schema: str, older_than_s: float = 0) -> list[dict[str, Any]]:
    """Per topic and contract: events sent and not confirmed (events, items, amount, first sent, most sends)."""
    rows = await conn.fetch(
        "SELECT u.topic, c.key AS contract_id, count(*) AS events, sum((u.summary ->> 'items')::int) AS items,"
        " sum((c.value #>> '{}')::numeric) AS amount, min(u.first_sent_at) AS first_sent_at, max(u.sends) AS sends"
        f" FROM {schema}.unconfirmed u, jsonb_each(u.summary -> 'contracts') AS c"
        " WHERE u.sent_at < now() - make_interval(secs => $1) GROUP BY u.topic, c.key ORDER BY 1, 2",
        older_than_s,
    )
    return [dict(r) for r in rows]


def _spend_summary(env: Envelope[Any]) -> dict[str, Any]:
    by_contract: dict[str, Decimal] = defaultdict(Decimal)
    for d in env.payload.deltas:
        by_contract[d.contract_id] += d.amount
    return {"contracts": {c: str(a) for c, a in by_contract.items()}, "items": len(env.payload.deltas)}


def _attribution_summary(env: Envelope[Any]) -> dict[str, Any]:
    return {"contracts": {env.payload.contract_id: "0"}, "items": 1}


SPEND_HOP = ConfirmedHop(SPEND_BATCHES, SPEND_ACKS, SPEND_BATCH, _spend_summary)
ATTRIBUTION_HOP = ConfirmedHop(ATTRIBUTION, ATTRIBUTION_ACKS, ATTRIBUTION_CHANGED, _attribution_summary)
