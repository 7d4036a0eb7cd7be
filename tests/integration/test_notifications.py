"""Notifications on the real broker and PostgreSQL, delivering to a real local HTTP receiver: one alert for
10,000 events that keep a rule true; a receiver down then up, and a restart mid-retries, get every
transition exactly once and in order."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiokafka import AIOKafkaConsumer

from acoflow.stack import free_port
from services.notifications.app import DECLARATION, MIGRATIONS, build
from shared.broker import ensure_topics, make_producer, publish_all
from shared.envelope import new_envelope
from shared.events import POSITION_UPDATED, SettlementPosition
from shared.service import ServiceRuntime
from shared.settings import Settings

pytestmark = pytest.mark.integration


class Receiver(BaseHTTPRequestHandler):
    up: ClassVar[bool] = True
    received: ClassVar[list[dict[str, Any]]] = []
    refused: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if not Receiver.up:
            Receiver.refused += 1
            self.send_response(503)
        else:
            Receiver.received.append({**body, "key": self.headers["idempotency-key"]})
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.up, Receiver.received, Receiver.refused = True, [], 0
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def position(contract: str, sequence: int, loss: int) -> bytes:
    zero = Decimal(0)
    p = SettlementPosition(
        contract_id=contract, contract_version=1, sequence=sequence, program="MSSP", track="BE", performance_year=2025,
        as_of=date(2025, 6, 1), members=100, member_months_to_date=600, member_months_total=1200, lines_applied=1000 + sequence,
        benchmark_to_date=Decimal(600_000), benchmark_total=Decimal(1_200_000), paid_to_date=Decimal(600_000),
        paid_by_service_month={}, incurred_to_date=zero, projected_expenditure=zero, projected_gross_savings=zero,
        projected_savings_rate=Decimal("0.05"), msr=Decimal("0.02"), mlr=Decimal("0.02"), gate="savings",
        quality_score=Decimal(1), final_sharing_rate=Decimal("0.5"), projected_shared_savings_losses=Decimal(-loss),
        downside_exposure_now=Decimal(loss), downside_exposure_at_cap=Decimal(100_000), probability_clears_msr=zero,
        probability_crosses_mlr=zero, parameters_version="test",
    )  # fmt: skip
    return new_envelope(POSITION_UPDATED, p, "test").to_bytes()


def settings_for(broker: str, database: str, hook: str, tmp_path: Path) -> Settings:
    rules = tmp_path / "rules.yaml"
    rules.write_text("defaults:\n  - {rule: projected_loss_above, threshold: 1000, band: 100}\n")
    return Settings(
        kafka_bootstrap=broker, database_url=database, webhook_url=hook, webhook_secret="s" * 32, webhook_backoff_base_s=0.05,
        webhook_backoff_max_s=0.3, webhook_max_attempts=10_000, webhook_timeout_s=2, alert_rules_file=rules,
    )  # fmt: skip


async def started(settings: Settings) -> ServiceRuntime:
    runtime = ServiceRuntime(DECLARATION, Path(MIGRATIONS), settings)
    build(runtime)
    await runtime.start()
    return runtime


async def until(check: Any, seconds: float = 60) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    return await check()


def mine(contract: str) -> list[dict[str, Any]]:
    return [r for r in Receiver.received if r["contract_id"] == contract]


# The newest position notifications evaluated for a contract.
EVALUATED_UP_TO = "SELECT last_sequence FROM notifications.contract_activity WHERE contract_id = $1"


async def test_ten_thousand_events_keeping_a_rule_true_make_one_alert(
    broker: str, database: str, receiver: str, tmp_path: Path
) -> None:
    await ensure_topics(broker)
    producer = make_producer(broker, "test")
    await producer.start()
    try:
        await publish_all(producer, [("settlement.v1", "N1", position("N1", n, 5_000)) for n in range(1, 10_001)])
    finally:
        await producer.stop()
    runtime = await started(settings_for(broker, database, receiver, tmp_path))
    try:

        async def seen_all() -> bool:
            seq = await runtime.pool.fetchval(EVALUATED_UP_TO, "N1")
            return seq == 10_000

        assert await until(seen_all)
        assert await until(lambda: asyncio.sleep(0, len(mine("N1")) == 1))
        await asyncio.sleep(1)
        assert [(r["rule"], r["kind"]) for r in mine("N1")] == [("projected_loss_above", "raised")]
        rows = await runtime.pool.fetch("SELECT kind, status FROM notifications.deliveries WHERE contract_id = 'N1'")
        assert [(r["kind"], r["status"]) for r in rows] == [("raised", "delivered")]
    finally:
        await runtime.stop()


async def test_receiver_down_then_up_across_a_restart_gets_each_transition_once_in_order(
    broker: str, database: str, receiver: str, tmp_path: Path
) -> None:
    Receiver.up = False
    settings = settings_for(broker, database, receiver, tmp_path)
    await ensure_topics(broker)
    producer = make_producer(broker, "test")
    await producer.start()
    runtime = await started(settings)
    try:
        # raise (5,000 > 1,000), hold inside the band (950 > 900), resolve (0), raise again
        # One at a time: within one batch only a contract's newest position is evaluated.
        for n, loss in enumerate((5_000, 950, 0, 7_000), start=1):
            await publish_all(producer, [("settlement.v1", "N2", position("N2", n, loss))])

            async def evaluated(n: int = n) -> bool:
                seq = await runtime.pool.fetchval(EVALUATED_UP_TO, "N2")
                return seq == n

            assert await until(evaluated)

        async def three_retrying() -> bool:
            rows = await runtime.pool.fetch(
                "SELECT attempts FROM notifications.deliveries WHERE contract_id = 'N2' AND status = 'pending'"
            )
            return len(rows) == 3 and any(r["attempts"] > 0 for r in rows)

        assert await until(three_retrying)
    finally:
        await runtime.stop()  # a restart in the middle of the retries
    assert Receiver.refused > 0 and not mine("N2")
    runtime = await started(settings)
    try:
        Receiver.up = True
        assert await until(lambda: asyncio.sleep(0, len(mine("N2")) >= 3))
        await asyncio.sleep(1.5)  # anything sent twice would show up now
        got = mine("N2")
        assert [r["kind"] for r in got] == ["raised", "resolved", "raised"]
        assert len({r["key"] for r in got}) == 3
        assert got[0]["alert_id"] == got[1]["alert_id"] != got[2]["alert_id"]
        statuses = await runtime.pool.fetch("SELECT status FROM notifications.deliveries WHERE contract_id = 'N2'")
        assert {r["status"] for r in statuses} == {"delivered"}
    finally:
        await runtime.stop()
        await producer.stop()
    kinds = sorted(e["payload"]["kind"] for e in await notification_events(broker) if e["payload"]["contract_id"] == "N2")
    assert kinds == ["delivered", "delivered", "delivered", "raised", "raised", "resolved"]


async def notification_events(broker: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        "notifications.v1", bootstrap_servers=broker, auto_offset_reset="earliest", group_id="test-notification-events",
        enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        for _ in range(8):
            batch = await consumer.getmany(timeout_ms=500)
            found += [json.loads(r.value) for records in batch.values() for r in records]
    finally:
        await consumer.stop()
    return found
