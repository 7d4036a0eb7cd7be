"""The one settings object: environment variables with the ACOFLOW_ prefix (or a .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACOFLOW_", env_file=".env", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # How every Kafka client (services, loaders, CLI, bench) authenticates to the broker: SASL (PLAIN or SCRAM)
    # over TLS in production, with the CA and, for mutual TLS, a client certificate (shared/broker.py).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # Topics: what production's replicated Kafka gets (the embedded broker has one node).
    topic_replication_factor: int = Field(default=1, ge=1)
    topic_min_insync_replicas: int = Field(default=1, ge=1)
    topic_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    # DATABASE_URL is honoured without the prefix too, as most platforms set it that way.
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("ACOFLOW_DATABASE_URL", "DATABASE_URL"))
    state_dir: Path = Path(".state")
    host: str = "127.0.0.1"
    broker_port: int = 0  # 0: a free port when the embedded stack starts the broker
    contracts_port: int = 8000
    claims_ingest_port: int = 8001
    settlement_port: int = 8002
    notifications_port: int = 8003
    # A consumer that stops heartbeating (killed) leaves its group after session_timeout: 6 s is the least a
    # Kafka broker accepts by default (group.min.session.timeout.ms), so production and the embedded node agree.
    # Heartbeats are a third of it, as Kafka recommends.
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 2000
    batch_max_records: int = 1000
    # Spend events settlement applies in one transaction (its positions are recomputed apart, see below).
    settlement_batch_max_records: int = 5000
    # Contracts recomputed per pass of settlement's position loop (one transaction, one event each).
    settlement_recompute_max_contracts: int = 500
    # The least time between two of those passes: what a position may wait for others to be computed with it.
    positions_pace_s: float = 0.1
    # How consumers fetch (shared/broker.py, FetchPace): while quiet, a fetch is answered as soon as anything
    # arrives, and with nothing arriving waits this long in the broker (what an idle consumer costs it and
    # itself). The broker answers a connection's requests in order and aiokafka sends metadata and
    # FindCoordinator on the fetch's connection, so this is also how long those can wait behind a quiet fetch
    # (after a broker restart: the group's rejoin, docs/benchmarks.md). In a steady stream, a fetch waits up
    # to the pace for fetch_min_bytes, so the stream comes in batches: the pace is the most a record waits at
    # each hop. Topics on the claim-to-position path (hot) at
    # the first pace; the rest (contracts, rosters, keys, rejects, positions) at the second.
    fetch_max_wait_ms: int = 2_000
    fetch_min_bytes: int = 64 * 1024
    batch_pace_s: float = 0.1
    cold_batch_pace_s: float = 1.0
    outbox_batch: int = 2000
    # Relays and work loops are woken by the commits that give them work; this is only how long they wait
    # for work nobody woke them for (rows left by a crash or another instance). Polling more often costs the
    # database and the service CPU while idle.
    outbox_idle_sleep_s: float = 5.0
    # An event on a confirmed hop (spend.v2, attribution.v1) its consumer has not confirmed is re-sent after this long.
    resend_after_s: float = 30.0
    # contracts.v1, quality.v1 and settlement.v1 carry full states: their producers send every current one again
    # this often (and at start), so a state a broker lost is restored without waiting for the next change.
    republish_interval_s: float = 300.0
    # How long a webhook delivery is held by the attempt posting it (longer than the request's timeout).
    webhook_lease_s: float = 60.0
    db_pool_size: int = 4
    log_level: str = "INFO"
    shutdown_timeout_s: float = 15.0
    topic_check_interval_s: float = 30.0
    # Partitions of every topic this install creates; unset, each topic's own count (shared/topics.py), as
    # production and the embedded stack run.
    topic_partitions: int | None = Field(default=None, ge=1)
    # Notifications: default webhook for alerts, its signing secret, and delivery policy.
    webhook_url: str | None = None
    webhook_secret: SecretStr = SecretStr("")
    webhook_timeout_s: float = 5.0
    webhook_max_attempts: int = 10
    webhook_backoff_base_s: float = 0.5
    webhook_backoff_max_s: float = 300.0
    alert_projected_loss_above: str = "0"  # a Decimal amount; alerts when the projected shared loss exceeds it
    # Alert rules: a YAML file of defaults and per-contract rules (docs in services/notifications/rules.py).
    alert_rules_file: Path | None = None
    alert_check_interval_s: float = 60.0
    # Contracts API: an admin key the service registers (hashed) at start, so a new install can create the
    # rest with `acoflow keys create`; and the key the CLI sends (else the one `acoflow up` wrote to state_dir).
    bootstrap_api_key: SecretStr = SecretStr("")
    # Keys that sign internal events (`kid:secret,kid:secret`, shared/signing.py) and the id of the one that signs.
    event_keys: SecretStr = SecretStr("")
    event_key_id: str = ""
    # The largest HTTP request body a service reads (a roster of 100,000 members is about 6 MB); larger: 413.
    max_request_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # Originals of rejected records (PHI) are purged this many days after they arrived; reasons stay.
    reject_original_retention_days: int = Field(default=30, ge=1)
    api_key: SecretStr = SecretStr("")

    @field_validator("bootstrap_api_key")
    @classmethod
    def _long_bootstrap_key(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < 32:
            raise ValueError("bootstrap_api_key: must be 32 characters or more of random text (acoflow keys create)")
        return value

    def port_of(self, service: str) -> int:
        port: int = getattr(self, f"{service}_port")
        return port


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
