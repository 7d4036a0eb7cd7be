"""Who may do what on the production Kafka: one principal per service and one for payer feeds and loaders, each
allowed to write only its own topics and read only what it consumes (and its own consumer groups). Printed, after
the topics' `kafka-topics.sh --create` commands, as `kafka-acls.sh` commands, which the compose init step runs
(`acoflow kafka-acls`)."""

from __future__ import annotations

import importlib
import shlex
from dataclasses import dataclass
from functools import cache

from shared.topics import ALL_TOPICS, CLAIMS_REJECTED, CLAIMS_SUBMITTED, MEMBERS, TopicSpec, by_name

SERVICES = ("contracts", "claims_ingest", "settlement", "notifications")


@dataclass(frozen=True)
class Principal:
    name: str
    writes: tuple[TopicSpec, ...]
    reads: tuple[TopicSpec, ...] = ()
    groups: tuple[str, ...] = ()  # the consumer groups it joins (each named "<service>" or "<service>.<part>")


def wiring(service: str) -> tuple[tuple[TopicSpec, ...], tuple[str, ...]]:
    """What a service subscribes to and the groups it joins, read off the subscribers its build() wires (on a
    runtime that is never started): the grants cannot leave out a subscription the service has."""
    from shared.service import ServiceRuntime
    from shared.settings import Settings

    module = importlib.import_module(f"services.{service}.app")
    runtime = ServiceRuntime(service, module.MIGRATIONS, Settings(), module.PRODUCES)
    module.build(runtime)
    runtime.wire_subscriptions()
    wired = runtime.consumer_groups()
    topics = {name for _, names in wired for name in names}
    groups = sorted({group for group, _ in wired})
    return tuple(by_name(name) for name in sorted(topics)), tuple(groups)


def service_principal(service: str) -> Principal:
    module = importlib.import_module(f"services.{service}.app")
    reads, groups = wiring(service)
    return Principal(service, tuple(module.PRODUCES), reads, groups)


@cache
def principals() -> tuple[Principal, ...]:
    return (
        # A payer's feed publishes claim lines and nothing else.
        Principal("payer", (CLAIMS_SUBMITTED,)),
        # `acoflow load` publishes claims, the lines it refused, and CCLF9 member id changes.
        Principal("loader", (CLAIMS_SUBMITTED, CLAIMS_REJECTED, MEMBERS)),
        *(service_principal(name) for name in SERVICES),
    )


def topic_commands(connect: str) -> list[str]:
    """Every topic, as the installer (not a service, which may not create topics) makes it: its partitions and
    configs from shared/topics.py and shared/broker.py (topic_configs), the replication the settings give."""
    from shared.broker import topic_configs
    from shared.settings import Settings

    settings = Settings()
    out = []
    for topic in ALL_TOPICS:
        configs = "".join(f" --config {k}={v}" for k, v in topic_configs(topic, settings).items())
        out.append(
            f"/opt/kafka/bin/kafka-topics.sh {connect} --create --if-not-exists --topic {topic.name}"
            f" --partitions {topic.partitions} --replication-factor {settings.topic_replication_factor}{configs}"
        )
    return out


def commands(bootstrap: str = "kafka:9093", config: str = "/etc/kafka/admin.properties") -> list[str]:
    """The ACLs as kafka-acls.sh commands (the admin principal, a super user, runs them)."""
    connect = f"--bootstrap-server {shlex.quote(bootstrap)} --command-config {shlex.quote(config)}"
    out = topic_commands(connect)
    base = f"/opt/kafka/bin/kafka-acls.sh {connect}"
    for p in principals():
        who = f"--allow-principal User:{p.name}"
        for topic in p.writes:
            out.append(f"{base} --add {who} --operation Write --operation Describe --topic {topic.name}")
        for topic in p.reads:
            out.append(f"{base} --add {who} --operation Read --operation Describe --topic {topic.name}")
        if p.groups:  # every consumer group of a service is named after it (shared/service.py: subscribe)
            out.append(f"{base} --add {who} --operation Read --group {p.name} --resource-pattern-type prefixed")
    return out
