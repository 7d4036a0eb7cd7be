"""Who may do what on the production Kafka: one principal per service and one for payer feeds and loaders, each
allowed to write only its own topics and read only what it consumes (and its own consumer groups). Printed as
`kafka-acls.sh` and `kafka-configs.sh` commands, which the compose init step runs (`acoflow kafka-acls`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from shared.topics import (
    ATTRIBUTION,
    ATTRIBUTION_ACKS,
    CLAIMS_REJECTED,
    CLAIMS_SUBMITTED,
    CONTRACTS,
    DEADLETTER,
    KEYS,
    MEMBERS,
    NOTIFICATIONS,
    QUALITY,
    SETTLEMENT,
    SPEND,
    SPEND_ACKS,
    SPEND_BATCHES,
    TopicSpec,
)


@dataclass(frozen=True)
class Principal:
    name: str
    writes: tuple[TopicSpec, ...]
    reads: tuple[TopicSpec, ...] = ()


PRINCIPALS: tuple[Principal, ...] = (
    # A payer's feed publishes claim lines and nothing else.
    Principal("payer", (CLAIMS_SUBMITTED,)),
    # `acoflow load` publishes claims, the lines it refused, and CCLF9 member id changes.
    Principal("loader", (CLAIMS_SUBMITTED, CLAIMS_REJECTED, MEMBERS)),
    Principal("contracts", (CONTRACTS, ATTRIBUTION, QUALITY, KEYS, DEADLETTER), (ATTRIBUTION_ACKS,)),
    Principal(
        "claims_ingest",
        (SPEND_BATCHES, CLAIMS_REJECTED, ATTRIBUTION_ACKS, DEADLETTER),
        (CLAIMS_SUBMITTED, ATTRIBUTION, MEMBERS, CLAIMS_REJECTED, SPEND_ACKS, KEYS),
    ),
    Principal("settlement", (SETTLEMENT, SPEND_ACKS, DEADLETTER), (SPEND, SPEND_BATCHES, CONTRACTS, QUALITY, KEYS)),
    Principal("notifications", (NOTIFICATIONS, DEADLETTER), (SETTLEMENT, CLAIMS_SUBMITTED, CLAIMS_REJECTED, KEYS)),
)


def commands(bootstrap: str = "kafka:9093", config: str = "/etc/kafka/admin.properties") -> list[str]:
    """The ACLs as kafka-acls.sh commands (the admin principal, a super user, runs them)."""
    out: list[str] = []
    base = f"/opt/kafka/bin/kafka-acls.sh --bootstrap-server {shlex.quote(bootstrap)} --command-config {shlex.quote(config)}"
    for p in PRINCIPALS:
        who = f"--allow-principal User:{p.name}"
        for topic in p.writes:
            out.append(f"{base} --add {who} --operation Write --operation Describe --topic {topic.name}")
        for topic in p.reads:
            out.append(f"{base} --add {who} --operation Read --operation Describe --topic {topic.name}")
        if p.reads:  # every consumer group of a service is named after it (shared/service.py: subscribe)
            out.append(f"{base} --add {who} --operation Read --group {p.name} --resource-pattern-type prefixed")
    return out
