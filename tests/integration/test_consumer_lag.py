"""Consumer lag on a real broker: a FastStream subscriber built with the shared batch options reports, per
partition, how many records remain past the batch it holds, and 0 once it has read to the end."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from shared.broker import ForgetRevokedLag, batch_options, ensure_topics, make_broker
from shared.metrics import CONSUMER_LAG, REGISTRY
from shared.settings import Settings
from shared.topics import TopicSpec

pytestmark = pytest.mark.integration

TOPIC = TopicSpec("test.lag.v1", 1, hot=True, internal=False)


async def test_a_subscriber_reports_its_lag(broker: str) -> None:
    await ensure_topics(broker, [TOPIC])
    settings = Settings(kafka_bootstrap=broker)
    seen: list[int] = []
    lags: list[float | None] = []
    kafka = make_broker(settings, "test-lag")

    def lag() -> float | None:
        return REGISTRY.get_sample_value("acoflow_consumer_lag", {"group": "test-lag", "topic": TOPIC.name, "partition": "0"})

    @kafka.subscriber(TOPIC.name, **batch_options(settings, "test-lag", max_records=2))
    async def handle(records: list) -> None:  # type: ignore[type-arg]
        seen.extend(r.offset for r in records)
        lags.append(lag())

    async with kafka:
        for i in range(5):
            await kafka.publish(b"x%d" % i, TOPIC.name, key=b"k")
        await kafka.start()
        for _ in range(200):
            if len(seen) >= 5:
                break
            await asyncio.sleep(0.05)
    assert seen == [0, 1, 2, 3, 4]
    # Each batch sees what remains after it: 3 after the first two records, 0 after the last.
    assert lags[0] == 3
    assert lags[-1] == 0
    assert lag() == 0


async def test_a_revoked_partition_stops_being_reported() -> None:
    CONSUMER_LAG.labels("test-revoke", TOPIC.name, "0").set(42)
    CONSUMER_LAG.labels("test-revoke", TOPIC.name, "1").set(7)
    await ForgetRevokedLag("test-revoke").on_partitions_revoked([TopicPartition(TOPIC.name, 0)])
    await ForgetRevokedLag("test-revoke").on_partitions_revoked([TopicPartition(TOPIC.name, 5)])  # never reported
    assert (
        REGISTRY.get_sample_value("acoflow_consumer_lag", {"group": "test-revoke", "topic": TOPIC.name, "partition": "0"}) is None
    )
    assert REGISTRY.get_sample_value("acoflow_consumer_lag", {"group": "test-revoke", "topic": TOPIC.name, "partition": "1"}) == 7
