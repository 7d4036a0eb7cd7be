"""A Kafka node secured as production's is (docker-compose.yml): SASL_SSL with SCRAM-SHA-512 over TLS from a CA
made here, one principal per service, payer and loader, a super user, and the grants `acoflow kafka-acls` gives."""

from __future__ import annotations

import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from acoflow.kafka_acls import principals
from acoflow.kafka_node import KafkaNode
from shared.declaration import Declaration
from shared.settings import Settings
from shared.topics import ALL_TOPICS

ADMIN = "admin"


def make_tls(folder: Path, password: str) -> tuple[Path, Path]:
    """A CA and the broker's certificate for 127.0.0.1 signed by it: (the CA's PEM, the broker's PKCS12 keystore)."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, cwd=folder, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=acoflow test CA",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "broker.key", "-out", "broker.csr")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", "broker.pem")  # fmt: skip
    openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-out", "broker.p12",
            "-passout", f"pass:{password}")  # fmt: skip
    return folder / "ca.pem", folder / "broker.p12"


@dataclass
class SecuredKafka:
    node: KafkaNode
    ca: Path
    passwords: dict[str, str]

    def settings(self, user: str | None, **overrides: object) -> Settings:
        """A client's settings as `user` (None: TLS without credentials)."""
        auth: dict[str, object] = {"kafka_security_protocol": "SSL"}
        if user is not None:
            auth = {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
                    "kafka_sasl_username": user, "kafka_sasl_password": self.passwords.get(user, "not-the-password")}  # fmt: skip
        return Settings(kafka_bootstrap=self.node.bootstrap, kafka_ssl_cafile=self.ca, **{**auth, **overrides})

    def env(self, user: str) -> dict[str, str]:
        """The same as environment variables, for a service process."""
        return {
            "ACOFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "ACOFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "ACOFLOW_KAFKA_SASL_USERNAME": user,
            "ACOFLOW_KAFKA_SASL_PASSWORD": self.passwords[user],
            "ACOFLOW_KAFKA_SSL_CAFILE": str(self.ca),
        }

    def refusals(self) -> list[str]:
        """What the broker's authorizer logged as denied."""
        lines = self.node.log_path.read_text().splitlines()
        return [line for line in lines if "Principal = User:" in line and " is Denied " in line]


def secured_node(home: Path) -> SecuredKafka:
    store_password = secrets.token_urlsafe(16)
    ca, keystore = make_tls(home / "tls", store_password)
    users = [ADMIN, *(p.name for p in principals())]
    passwords = {user: secrets.token_urlsafe(24) for user in users}
    jaas = f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" password="{passwords[ADMIN]}";'
    node = KafkaNode(
        home / "kafka",
        listener="SASL_SSL",
        properties={
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(keystore),
            "ssl.keystore.password": store_password,
            # The broker talks to itself over this listener too, so it trusts the CA.
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(ca),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The controller listener is loopback PLAINTEXT inside the one process: its principal is ANONYMOUS.
            "super.users": f"User:{ADMIN};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        },
        scram=passwords,
    )
    node.start()
    return SecuredKafka(node, ca, passwords)


def apply_grants(kafka: SecuredKafka) -> None:
    """The topics and the grants of acoflow/kafka_acls.py, made by the super user through Kafka's Admin API."""
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        NewTopic,
        ResourcePatternType,
        ResourceType,
    )

    from shared.broker import topic_configs

    admin = AdminClient({
        "bootstrap.servers": kafka.node.bootstrap, "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": ADMIN, "sasl.password": kafka.passwords[ADMIN], "ssl.ca.location": str(kafka.ca),
    })  # fmt: skip
    settings = Settings()
    topics = [NewTopic(t.name, t.partitions, 1, config=topic_configs(t, settings)) for t in ALL_TOPICS]
    for future in admin.create_topics(topics, request_timeout=30).values():
        future.result()

    def grant(p: Declaration, kind: ResourceType, name: str, op: AclOperation, pattern: ResourcePatternType) -> AclBinding:
        return AclBinding(kind, name, pattern, f"User:{p.name}", "*", op, AclPermissionType.ALLOW)

    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    bindings = []
    write, read, describe = AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE
    for p in principals():
        for topic in p.produces:
            bindings += [grant(p, ResourceType.TOPIC, topic.name, op, literal) for op in (write, describe)]
        for topic in p.consumes:
            bindings += [grant(p, ResourceType.TOPIC, topic.name, op, literal) for op in (read, describe)]
        if p.consumes:
            bindings.append(grant(p, ResourceType.GROUP, p.name, AclOperation.READ, prefixed))
    unique = list({(b.restype, b.name, b.principal, b.operation): b for b in bindings}.values())  # Describe once a topic
    for future in admin.create_acls(unique, request_timeout=30).values():
        future.result()
    # The controller has them once create_acls returns; the broker's authorizer a moment later.
    everything = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    deadline = time.monotonic() + 30
    while len(admin.describe_acls(everything, request_timeout=10).result()) < len(unique):
        if time.monotonic() > deadline:
            raise TimeoutError("the broker did not apply the grants within 30 s")
        time.sleep(0.2)
