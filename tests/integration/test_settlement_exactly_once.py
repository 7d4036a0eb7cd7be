"""The settlement service on the real broker and PostgreSQL: redelivery, duplicate publishes and a
restart never count a cent twice, and bad events land in the dead-letter topic without stopping it."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.settlement.app import MIGRATIONS, build
from shared.envelope import new_envelope
from shared.events import CONTRACT_CHANGED, SPEND_APPLIED, ContractState, RosterSummary, SpendDelta
from shared.kafka import ensure_topics, make_producer, publish_all
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


def spend(n: int, amount: str) -> bytes:
    delta = SpendDelta(
        contract_id="K1",
        member_id=f"M{n % 2}",
        line_key=f"L{n}",
        enrollment_type="aged_nondual",
        claim_type="professional",
        service_month=date(2025, 2, 1),
        paid_date=date(2025, 3, 1),
        amount=Decimal(amount),
    )
    return new_envelope(SPEND_APPLIED, delta, "test", event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"L{n}")).to_bytes()


async def wait_for(runtime: ServiceRuntime, expected: Decimal, seconds: float = 30) -> Decimal:
    deadline = time.monotonic() + seconds
    total = Decimal(-1)
    while time.monotonic() < deadline:
        total = await runtime.pool.fetchval(
            "SELECT coalesce(sum(amount), -1) FROM settlement.member_spend WHERE contract_id = 'K1'"
        )
        if total == expected:
            return total
        await asyncio.sleep(0.2)
    return total


async def test_duplicates_and_restart_count_once(broker: str, database: str) -> None:
    settings = Settings(kafka_bootstrap=broker, database_url=database, session_timeout_ms=2000)
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

    runtime = ServiceRuntime("settlement", Path(MIGRATIONS), settings)
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
    runtime = ServiceRuntime("settlement", Path(MIGRATIONS), settings)
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
