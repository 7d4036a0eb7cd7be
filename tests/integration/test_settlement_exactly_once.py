"""The settlement service on the real broker and PostgreSQL: redelivery, duplicate publishes and a
restart never count a cent twice, and bad events land in the dead-letter topic without stopping it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from services.settlement.app import DECLARATION, MIGRATIONS, build
from shared.broker import ensure_topics, make_producer, publish_all
from shared.envelope import new_envelope
from shared.events import (
    CONTRACT_CHANGED,
    SPEND_APPLIED,
    SPEND_BATCH,
    ContractState,
    RosterSummary,
    SpendBatch,
    SpendDelta,
)
from shared.service import ServiceRuntime
from shared.settings import Settings
from tests.terms import mssp_terms

pytestmark = pytest.mark.integration


def contract() -> ContractState:
    terms = mssp_terms()
    roster = RosterSummary(
        members={"aged_nondual": 2}, member_months={f"2025-{m:02d}": {"aged_nondual": 2} for m in range(1, 13)}
    )
    return ContractState(
        contract_id="K1",
        version=1,
        name="K1",
        payer="CMS",
        terms=terms,
        roster=roster,
        changed_by="test",
        changed_at=datetime.now(UTC),
    )


def delta(contract_id: str, member_id: str, line_key: str, amount: str) -> SpendDelta:
    return SpendDelta(
        contract_id=contract_id,
        member_id=member_id,
        line_key=line_key,
        enrollment_type="aged_nondual",
        claim_type="professional",
        service_month=date(2025, 2, 1),
        paid_date=date(2025, 3, 1),
        amount=Decimal(amount),
    )


def spend(n: int, amount: str) -> bytes:
    one = delta("K1", f"M{n % 2}", f"L{n}", amount)
    return new_envelope(SPEND_APPLIED, one, "test", event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"L{n}")).to_bytes()


async def wait_for(runtime: ServiceRuntime, expected: Decimal, seconds: float = 30, contract_id: str = "K1") -> Decimal:
    deadline = time.monotonic() + seconds
    total = Decimal(-1)
    while time.monotonic() < deadline:
        total = await runtime.pool.fetchval(
            "SELECT coalesce(sum(amount), -1) FROM settlement.member_spend WHERE contract_id = $1", contract_id
        )
        if total == expected:
            return total
        await asyncio.sleep(0.2)
    return total


async def test_duplicates_and_restart_count_once(broker: str, database: str) -> None:
    settings = Settings(kafka_bootstrap=broker, database_url=database)
    await ensure_topics(broker)
    producer = make_producer(broker, "test")
    await producer.start()
    events = [("spend.v1", "K1", spend(n, f"{n}.25")) for n in range(1, 201)]
    expected = sum(Decimal(f"{n}.25") for n in range(1, 201))
    contract_event = new_envelope(CONTRACT_CHANGED, contract(), "t")
    ours = [contract_event.event_id] + [uuid.uuid5(uuid.NAMESPACE_URL, f"L{n}") for n in range(1, 201)]
    await publish_all(producer, [("contracts.v1", "K1", contract_event.to_bytes())])
    await publish_all(producer, events)
    await publish_all(producer, events[:50])  # a duplicate publish
    await publish_all(producer, [("spend.v1", "K1", b"{not json"), ("spend.v1", "K1", b'{"event_type": "x"}')])

    runtime = ServiceRuntime(DECLARATION, Path(MIGRATIONS), settings)
    build(runtime)
    await runtime.start()
    try:
        assert await wait_for(runtime, expected) == expected
        deadline = time.monotonic() + 20
        processed = 0
        while time.monotonic() < deadline and processed != 201:
            # Other tests share the session broker: count this test's events only.
            processed = await runtime.pool.fetchval(
                "SELECT count(*) FROM settlement.processed_events WHERE event_id = ANY($1::uuid[])", ours
            )
            await asyncio.sleep(0.2)
        assert processed == 201  # 200 spend events and the contract, each once
    finally:
        await runtime.stop()

    # Everything again after a restart: the committed offsets and the dedupe table hold.
    await publish_all(producer, events)
    await producer.stop()
    runtime = ServiceRuntime(DECLARATION, Path(MIGRATIONS), settings)
    build(runtime)
    await runtime.start()
    try:
        await asyncio.sleep(3)
        assert await wait_for(runtime, expected) == expected
        position = await runtime.pool.fetchval("SELECT position FROM settlement.positions WHERE contract_id = 'K1'")
        assert Decimal(position["paid_to_date"]) == expected
        assert position["lines_applied"] == 200
    finally:
        await runtime.stop()


async def test_spend_batches_count_once_and_a_bad_batch_is_dead_lettered(broker: str, database: str) -> None:
    """spend.v2, as claims_ingest sends it: many deltas in one event, deduplicated by the batch's id."""
    settings = Settings(kafka_bootstrap=broker, database_url=database)
    await ensure_topics(broker)
    state = contract().model_copy(update={"contract_id": "K2", "name": "K2"})
    contract_event = new_envelope(CONTRACT_CHANGED, state, "t")

    def batch(first: int) -> tuple[uuid.UUID, bytes]:
        deltas = [delta("K2", f"M{n % 3}", f"B{n}", f"{n}.01") for n in range(first, first + 100)]
        env = new_envelope(SPEND_BATCH, SpendBatch(deltas=tuple(deltas)), "test")
        return env.event_id, env.to_bytes()

    batches = [batch(first) for first in (0, 100, 200)]
    expected = sum((Decimal(f"{n}.01") for n in range(300)), Decimal(0))
    bad = batches[0][1].replace(b'"amount":"0.010000"', b'"amount":"zero"')
    assert bad != batches[0][1]
    producer = make_producer(broker, "test")
    await producer.start()
    try:
        await publish_all(producer, [("contracts.v1", "K2", contract_event.to_bytes())])
        items = [("spend.v2", "K2", value) for _, value in batches]
        await publish_all(producer, [*items, items[1], ("spend.v2", "K2", bad), items[2]])  # duplicates, a bad one
    finally:
        await producer.stop()

    runtime = ServiceRuntime(DECLARATION, Path(MIGRATIONS), settings)
    build(runtime)
    await runtime.start()
    try:
        assert await wait_for(runtime, expected, contract_id="K2") == expected
        ours = [contract_event.event_id] + [event_id for event_id, _ in batches]
        deadline = time.monotonic() + 20
        position = None
        while time.monotonic() < deadline:
            position = await runtime.pool.fetchval("SELECT position FROM settlement.positions WHERE contract_id = 'K2'")
            if position and position["lines_applied"] == 300:
                break
            await asyncio.sleep(0.2)
        assert position is not None and position["lines_applied"] == 300
        assert Decimal(position["paid_to_date"]) == expected
        processed = await runtime.pool.fetchval(
            "SELECT count(*) FROM settlement.processed_events WHERE event_id = ANY($1::uuid[])", ours
        )
        assert processed == 4  # three batches and the contract, each once
        # The bad batch is kept with the field that made it bad, and none of its deltas counted.
        fields = await _dead_letter_fields(broker, "spend.v2")
        assert "payload.deltas.0.amount" in fields
    finally:
        await runtime.stop()


async def _dead_letter_fields(broker: str, source_topic: str, seconds: float = 15) -> set[str]:
    consumer = AIOKafkaConsumer(
        "deadletter.v1", bootstrap_servers=broker, group_id=f"t-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest"
    )
    await consumer.start()
    fields: set[str] = set()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not fields:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    payload = json.loads(r.value)["payload"]
                    if payload["source_topic"] == source_topic:
                        fields |= {reason["field"] for reason in payload["reasons"]}
    finally:
        await consumer.stop()
    return fields
