"""Topic names and partition counts, in one place. Every name carries its major version."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    # On the path from a claim line to its position: consumers poll it with short fetch waits. Polling the
    # others as often would cost the broker and the consumers CPU while idle.
    hot: bool = False
    # Written only by our services: consumers refuse an event without a valid signature (shared/signing.py).
    # Payer input (claims, and what the file loaders publish) is the broker's to authenticate.
    internal: bool = True


CLAIMS_SUBMITTED = TopicSpec("claims.submitted.v1", 8, hot=True, internal=False)
CLAIMS_REJECTED = TopicSpec("claims.rejected.v1", 4, internal=False)  # claims_ingest's and the loaders'
MEMBERS = TopicSpec("members.v1", 8, internal=False)  # CCLF9 id changes, from the loaders
CONTRACTS = TopicSpec("contracts.v1", 4, compacted=True)
ATTRIBUTION = TopicSpec("attribution.v1", 8)
QUALITY = TopicSpec("quality.v1", 4)
SPEND = TopicSpec("spend.v1", 8)  # one delta per event; superseded by spend.v2, read so none in flight is lost
SPEND_BATCHES = TopicSpec("spend.v2", 8, hot=True)
# Settlement's receipts for the spend batches it holds (applied now or before): claims_ingest re-sends a batch
# until its receipt arrives, so spend a broker lost on the way is sent again.
SPEND_ACKS = TopicSpec("spend.acks.v1", 2)
# claims_ingest's receipts for the attribution events it holds (shared/confirmations.py).
ATTRIBUTION_ACKS = TopicSpec("attribution.acks.v1", 2)
# Positions end the path: their consumers (alerts) can wait a quarter second.
SETTLEMENT = TopicSpec("settlement.v1", 4)
NOTIFICATIONS = TopicSpec("notifications.v1", 4)
KEYS = TopicSpec("keys.v1", 1, compacted=True)
# Events between our own services that fail to parse (a bug or a version skew) are kept here with reasons.
DEADLETTER = TopicSpec("deadletter.v1", 2)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    CLAIMS_SUBMITTED,
    CLAIMS_REJECTED,
    MEMBERS,
    CONTRACTS,
    ATTRIBUTION,
    QUALITY,
    SPEND,
    SPEND_BATCHES,
    SPEND_ACKS,
    ATTRIBUTION_ACKS,
    SETTLEMENT,
    NOTIFICATIONS,
    KEYS,
    DEADLETTER,
)


def by_name(name: str) -> TopicSpec:
    for topic in ALL_TOPICS:
        if topic.name == name:
            return topic
    raise KeyError(f"no topic {name!r} in shared/topics.py")
