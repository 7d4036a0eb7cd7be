"""The production broker's security, on a real Apache Kafka: SASL_SSL (SCRAM-SHA-512 over TLS from a CA made
here), one principal per service, payer and loader, and the grants `acoflow kafka-acls` prints. The claim-to-
position path works on each principal's grants alone, and what no principal was granted the broker refuses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import GroupAuthorizationFailedError, KafkaError, TopicAuthorizationFailedError

from acoflow.kafka_acls import SERVICES
from acoflow.stack import Stack, private_settings
from shared.broker import client_security, make_producer, publish_all
from tests.faults.harness import Feed, create_contract, publish, wait_for_total
from tests.secured import ADMIN, SecuredKafka, apply_grants, secured_node


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    secured = secured_node(tmp_path_factory.mktemp("secured"))
    try:
        apply_grants(secured)
        yield secured
    finally:
        secured.node.stop()


def test_claims_reach_positions_on_each_principals_grants_alone(kafka: SecuredKafka, database: str, tmp_path: Path) -> None:
    admin = kafka.settings(ADMIN)
    settings = private_settings(
        tmp_path / "state",
        database_url=database,
        kafka_security_protocol=admin.kafka_security_protocol,
        kafka_sasl_username=ADMIN,
        kafka_sasl_password=admin.kafka_sasl_password,
        kafka_ssl_cafile=kafka.ca,
    )
    stack = Stack(settings, settings.state_dir, broker=kafka.node)
    stack.service_env_extra = {name: kafka.env(name) for name in SERVICES}
    before = len(kafka.refusals())
    stack.start()
    try:
        feed = Feed("SECURED", members=50, lines=400, seed=21)
        create_contract(stack, feed)
        publish(stack.bootstrap, feed.items, settings=kafka.settings("payer"))
        wait_for_total(stack, feed, seconds=120)
    finally:
        stack.stop()
    # Had a service been left a grant short (a subscription or a topic it writes), the broker would have said so.
    refused = [line for line in kafka.refusals()[before:] if any(f"User:{name} " in line for name in SERVICES)]
    assert refused == []


async def _write(kafka: SecuredKafka, user: str, topic: str) -> None:
    settings = kafka.settings(user)
    producer = make_producer(settings.kafka_bootstrap, f"probe-{user}", settings)
    await producer.start()
    try:
        await asyncio.wait_for(publish_all(producer, [(topic, "probe", b"{}")]), 20)
    finally:
        await producer.stop()


def test_a_payer_writing_spend_is_refused(kafka: SecuredKafka) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(kafka, "payer", "spend.v2"))
    # It may not even see the topic: Describe (metadata) is refused before any Write is tried.
    assert any("User:payer is Denied operation" in line and "Topic:LITERAL:spend.v2" in line for line in kafka.refusals())


def test_settlement_writing_contracts_is_refused(kafka: SecuredKafka) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(kafka, "settlement", "contracts.v1"))
    assert any("User:settlement is Denied operation = WRITE" in line and "contracts.v1" in line for line in kafka.refusals())


def test_a_service_joining_another_services_group_is_refused(kafka: SecuredKafka) -> None:
    """settlement may read spend.v2, but not as claims_ingest's consumer group."""

    async def join() -> None:
        settings = kafka.settings("settlement")
        consumer = AIOKafkaConsumer(
            "spend.v2", bootstrap_servers=settings.kafka_bootstrap, group_id="claims_ingest", **client_security(settings)
        )
        await consumer.start()
        try:
            await asyncio.wait_for(consumer.getmany(timeout_ms=5000), 20)
        finally:
            await consumer.stop()

    with pytest.raises(GroupAuthorizationFailedError):
        asyncio.run(join())
    refused = kafka.refusals()
    assert any("User:settlement is Denied operation" in line and "Group:LITERAL:claims_ingest" in line for line in refused)


@pytest.mark.parametrize("who", [None, "payer-with-a-wrong-password"])
def test_a_client_without_valid_credentials_is_refused(kafka: SecuredKafka, who: str | None) -> None:
    """TLS alone, or SCRAM with a wrong password: no connection, so nothing to write with."""
    settings = kafka.settings(who)
    started = time.monotonic()
    with pytest.raises((KafkaError, OSError, asyncio.TimeoutError)):
        asyncio.run(_start_producer(settings.kafka_bootstrap, settings))
    assert time.monotonic() - started < 60
    said = "during SASL handshake" if who is None else "Failed authentication"
    assert said in kafka.node.log_path.read_text()


async def _start_producer(bootstrap: str, settings: object) -> None:
    from shared.settings import Settings

    assert isinstance(settings, Settings)
    producer = make_producer(bootstrap, "probe-anonymous", settings)
    try:
        await asyncio.wait_for(producer.start(), 20)
        await asyncio.wait_for(publish_all(producer, [("claims.submitted.v1", "probe", b"{}")]), 20)
    finally:
        await producer.stop()
