"""Every Kafka client authenticates as the settings say, and topics are created with what production needs."""

from __future__ import annotations

from pydantic import SecretStr

from shared.broker import broker_security, client_security, topic_configs
from shared.settings import Settings
from shared.topics import CONTRACTS, SPEND_BATCHES


def test_plaintext_by_default_and_sasl_scram_over_tls_from_settings() -> None:
    assert client_security(Settings()) == {} and broker_security(Settings()) is None
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="claims_ingest",
        kafka_sasl_password=SecretStr("s3cret"),
    )
    options = client_security(settings)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "claims_ingest" and options["sasl_plain_password"] == "s3cret"
    assert options["ssl_context"] is not None
    security = broker_security(settings)
    assert type(security).__name__ == "SASLScram512" and security is not None and security.use_ssl
    plain = broker_security(Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN"))
    assert type(plain).__name__ == "SASLPlaintext" and plain is not None and not plain.use_ssl


def test_compacted_topics_are_compacted_and_the_rest_keep_their_retention() -> None:
    settings = Settings(topic_replication_factor=3, topic_min_insync_replicas=2, topic_retention_ms=86_400_000)
    assert topic_configs(CONTRACTS, settings) == {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    assert topic_configs(SPEND_BATCHES, settings) == {"retention.ms": "86400000", "min.insync.replicas": "2"}
