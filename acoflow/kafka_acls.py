"""Who may do what on the production Kafka: one principal per service and one for payer feeds and loaders, each
allowed to write only its own topics and read only what it consumes (and its own consumer groups). Printed, after
the topics' `kafka-topics.sh --create` commands, as `kafka-acls.sh` commands, which the compose init step runs
(`acoflow kafka-acls`)."""

from __future__ import annotations

import importlib
import shlex
from functools import cache

from shared.declaration import LOADER, PAYER, Declaration
from shared.topics import ALL_TOPICS

SERVICES = ("contracts", "claims_ingest", "settlement", "notifications")


def declaration(service: str) -> Declaration:
    declared: Declaration = importlib.import_module(f"services.{service}.app").DECLARATION
    return declared


@cache
def principals() -> tuple[Declaration, ...]:
    """Every party with a principal of its own: the payer's feed, the loader, then each service."""
    return (PAYER, LOADER, *(declaration(name) for name in SERVICES))


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
        for topic in p.produces:
            out.append(f"{base} --add {who} --operation Write --operation Describe --topic {topic.name}")
        for topic in sorted(p.consumes, key=lambda t: t.name):
            out.append(f"{base} --add {who} --operation Read --operation Describe --topic {topic.name}")
        if p.consumes:  # every consumer group of a service is named after it (shared/service.py: subscribe)
            out.append(f"{base} --add {who} --operation Read --group {p.name} --resource-pattern-type prefixed")
    return out
