"""Spend that a broker may lose on its way is sent again until settlement confirms it.

Every spend.v2 batch claims_ingest sends is kept, in the transaction that enqueues it, until a receipt on
spend.acks.v1 names it; a batch still unconfirmed after `spend_resend_after_s` is put in the outbox again, with
its own event id, which settlement dedupes (and confirms again). A broker that restarts empty, or a message
lost between the outbox and settlement, so costs a delay, never money."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from shared.db import Conn, outbox_insert
from shared.envelope import Envelope
from shared.events import SPEND_BATCH, SpendReceipt
from shared.kafka import Parsed
from shared.topics import SPEND_BATCHES, TopicSpec

SCHEMA = "claims_ingest"
Outgoing = list[tuple[TopicSpec, str, Envelope[Any]]]
Apply = Callable[[Conn, list[Parsed[Any]]], Awaitable[Outgoing]]


async def keep_unconfirmed(conn: Conn, outgoing: Outgoing) -> None:
    batches = [(key, env) for topic, key, env in outgoing if topic == SPEND_BATCHES and env.event_type == SPEND_BATCH.event_type]
    if not batches:
        return
    rows = []
    for key, env in batches:
        by_contract: dict[str, Decimal] = defaultdict(Decimal)
        for d in env.payload.deltas:
            by_contract[d.contract_id] += d.amount
        rows.append((env.event_id, key, env.to_bytes(), {c: str(a) for c, a in by_contract.items()}, len(env.payload.deltas)))
    await conn.executemany(
        f"INSERT INTO {SCHEMA}.unconfirmed_spend (event_id, key, value, contracts, deltas) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (event_id) DO NOTHING",
        rows,
    )


def tracking(apply: Apply) -> Apply:
    """`apply`, keeping the spend batches it sends until they are confirmed."""

    async def tracked(conn: Conn, batch: list[Parsed[Any]]) -> Outgoing:
        outgoing = await apply(conn, batch)
        await keep_unconfirmed(conn, outgoing)
        return outgoing

    return tracked


async def confirm(conn: Conn, batch: list[Parsed[SpendReceipt]]) -> Outgoing:
    ids = list({i for p in batch for i in p.envelope.payload.batch_ids})
    await conn.execute(f"DELETE FROM {SCHEMA}.unconfirmed_spend WHERE event_id = ANY($1::uuid[])", ids)
    return []


async def resend_due(conn: Conn, after_s: float, limit: int) -> int:
    """Put the batches unconfirmed for `after_s` back in the outbox (the relay sends them); returns how many."""
    rows = await conn.fetch(
        f"UPDATE {SCHEMA}.unconfirmed_spend SET sent_at = now(), sends = sends + 1 WHERE event_id IN"
        f" (SELECT event_id FROM {SCHEMA}.unconfirmed_spend WHERE sent_at < now() - make_interval(secs => $1)"
        " ORDER BY sent_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING event_id, key, value",
        after_s,
        limit,
    )
    if rows:
        await conn.execute(
            outbox_insert(
                SCHEMA, "array_fill($1::text, ARRAY[cardinality($2::text[])])", "$2::text[]", "$3::uuid[]", "$4::bytea[]"
            ),
            SPEND_BATCHES.name,
            [r["key"] for r in rows],
            [r["event_id"] for r in rows],
            [bytes(r["value"]) for r in rows],
        )
    return len(rows)


async def unconfirmed(conn: Conn, older_than_s: float = 0) -> list[dict[str, Any]]:
    """Per contract: spend sent and not confirmed (batches, deltas, amount, oldest first send)."""
    rows = await conn.fetch(
        f"SELECT c.key AS contract_id, count(*) AS batches, sum(u.deltas) AS deltas, sum((c.value #>> '{{}}')::numeric)"
        f" AS amount, min(u.first_sent_at) AS first_sent_at, max(u.sends) AS sends FROM {SCHEMA}.unconfirmed_spend u,"
        " jsonb_each(u.contracts) AS c WHERE u.sent_at < now() - make_interval(secs => $1) GROUP BY c.key ORDER BY 1",
        older_than_s,
    )
    return [dict(r) for r in rows]


async def resend_now(conn: Conn) -> int:
    return await resend_due(conn, -1.0, 1_000_000)
