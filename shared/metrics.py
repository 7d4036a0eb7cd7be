"""Process-wide Prometheus registry and the counters every service shares."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry()

EVENTS_PROCESSED = Counter(
    "acoflow_events_processed_total", "Events applied (first delivery)", ["service", "topic"], registry=REGISTRY
)
EVENTS_DUPLICATE = Counter(
    "acoflow_events_duplicate_total", "Redelivered events skipped by dedupe", ["service", "topic"], registry=REGISTRY
)
EVENTS_REJECTED = Counter(
    "acoflow_events_rejected_total",
    "Events refused, with the first reason's code",
    ["service", "topic", "code"],
    registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "acoflow_outbox_published_total", "Events relayed from the outbox to Kafka", ["service", "topic"], registry=REGISTRY
)
OUTBOX_PENDING = Gauge("acoflow_outbox_pending", "Events waiting in the outbox", ["service"], registry=REGISTRY)
OUTBOX_OLDEST_AGE = Gauge(
    "acoflow_outbox_oldest_age_seconds",
    "Age of the oldest event the outbox relay found waiting (0 when it found none)",
    ["service"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "acoflow_consumer_lag",
    "Records on a partition past the last one a consumer group has in hand (as of its latest batch)",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
