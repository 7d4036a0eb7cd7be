"""Nothing valid vanishes on the claim stream: two different lines that share an event id (a producer outside our
control) are both stored; a row delivered again is counted as a repeat; a different row under a line key already
taken is refused to claims.rejected.v1 with the field that differs, in the batch and across batches."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from readers.base import submission
from services.claims_ingest.app import MIGRATIONS
from services.claims_ingest.handlers import SCHEMA, apply_claims, reject_claim
from shared.consumer import BatchConsumer
from shared.db import apply_migrations, create_pool
from shared.events import CLAIM_SUBMITTED
from shared.metrics import EVENTS_DUPLICATE
from shared.topics import CLAIMS_SUBMITTED
from shared.unit_of_work import UnitsOfWork

pytestmark = pytest.mark.integration
SHARED_ID = str(uuid.uuid4())


def record(offset: int, claim: str, amount: str, event_id: str = SHARED_ID) -> ConsumerRecord[bytes, bytes]:
    line = {"source": "feed", "claim_id": claim, "line_number": 1, "member_id": "M1", "payer": "CMS",
            "claim_type": "professional", "from_date": "2025-03-01", "thru_date": "2025-03-01",
            "paid_date": "2025-03-10", "paid_amount": amount}  # fmt: skip
    _, value = submission(line)
    envelope = json.loads(value)
    envelope["event_id"] = event_id
    raw = json.dumps(envelope).encode()
    return ConsumerRecord(CLAIMS_SUBMITTED.name, 0, offset, 0, 0, b"M1", raw, None, 2, len(raw), [])


def duplicates() -> float:
    return EVENTS_DUPLICATE.labels("claims_ingest", CLAIMS_SUBMITTED.name)._value.get()


async def test_lines_sharing_an_event_id_are_each_stored_and_conflicts_are_refused(database: str) -> None:
    pool = await create_pool(database, 2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, SCHEMA, Path(MIGRATIONS))
        consumer: BatchConsumer[Any] = BatchConsumer(
            service="claims_ingest", schema=SCHEMA, spec=CLAIM_SUBMITTED, topic=CLAIMS_SUBMITTED,
            units=UnitsOfWork(lambda: pool, SCHEMA), apply=apply_claims, reject=reject_claim, dedupe_by_id=False,
        )  # fmt: skip
        before = duplicates()
        # Two different lines back to back with one event id, the first again, and the first with another amount.
        first = [record(0, "A", "10.00"), record(1, "B", "20.00"), record(2, "A", "10.00"), record(3, "A", "99.00")]
        await consumer.handle(first)
        # A later batch: the second line once more, and with another amount (the conflict is found in the store).
        await consumer.handle([record(4, "B", "20.00", str(uuid.uuid4())), record(5, "B", "21.00", str(uuid.uuid4()))])
        async with pool.acquire() as conn:
            stored = await conn.fetch(f"SELECT line_key, amount FROM {SCHEMA}.claim_lines ORDER BY line_key")
            rejects = await conn.fetch(f"SELECT topic, value FROM {SCHEMA}.outbox WHERE topic = 'claims.rejected.v1' ORDER BY id")
    finally:
        await pool.close()
    assert [(r["line_key"].split("|")[1], r["amount"]) for r in stored] == [("A", Decimal("10.00")), ("B", Decimal("20.00"))]
    refused = [json.loads(r["value"])["payload"] for r in rejects]
    assert [(p["offset"], [(x["field"], x["code"]) for x in p["reasons"]]) for p in refused] == [
        (3, [("paid_amount", "conflicting_duplicate")]),
        (5, [("paid_amount", "conflicting_duplicate")]),
    ]
    assert "99.00" in refused[0]["original"]  # the refused line is kept whole for replay
    assert duplicates() - before == 2  # offset 2 in the batch, offset 4 in the store
