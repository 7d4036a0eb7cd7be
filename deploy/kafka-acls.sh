#!/bin/sh
# Written by `acoflow kafka-acls --bootstrap kafka:9094 --command-config /run/secrets/kafka_admin.properties`;
# a test checks it is what that command prints.
set -e
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:payer --operation Write --operation Describe --topic claims.submitted.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:loader --operation Write --operation Describe --topic claims.submitted.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:loader --operation Write --operation Describe --topic claims.rejected.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:loader --operation Write --operation Describe --topic members.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:contracts --operation Write --operation Describe --topic contracts.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:contracts --operation Write --operation Describe --topic attribution.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:contracts --operation Write --operation Describe --topic quality.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:contracts --operation Write --operation Describe --topic keys.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:contracts --operation Write --operation Describe --topic deadletter.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:contracts --operation Read --operation Describe --topic attribution.acks.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:contracts --operation Read --group contracts --resource-pattern-type prefixed
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:claims_ingest --operation Write --operation Describe --topic spend.v2
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:claims_ingest --operation Write --operation Describe --topic claims.rejected.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:claims_ingest --operation Write --operation Describe --topic attribution.acks.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:claims_ingest --operation Write --operation Describe --topic deadletter.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:claims_ingest --operation Read --operation Describe --topic claims.submitted.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:claims_ingest --operation Read --operation Describe --topic attribution.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:claims_ingest --operation Read --operation Describe --topic members.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:claims_ingest --operation Read --operation Describe --topic claims.rejected.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:claims_ingest --operation Read --operation Describe --topic spend.acks.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:claims_ingest --operation Read --operation Describe --topic keys.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:claims_ingest --operation Read --group claims_ingest --resource-pattern-type prefixed
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:settlement --operation Write --operation Describe --topic settlement.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:settlement --operation Write --operation Describe --topic spend.acks.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:settlement --operation Write --operation Describe --topic deadletter.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:settlement --operation Read --operation Describe --topic spend.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:settlement --operation Read --operation Describe --topic spend.v2
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:settlement --operation Read --operation Describe --topic contracts.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:settlement --operation Read --operation Describe --topic quality.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:settlement --operation Read --operation Describe --topic keys.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:settlement --operation Read --group settlement --resource-pattern-type prefixed
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:notifications --operation Write --operation Describe --topic notifications.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:notifications --operation Write --operation Describe --topic deadletter.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:notifications --operation Read --operation Describe --topic settlement.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:notifications --operation Read --operation Describe --topic claims.submitted.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:notifications --operation Read --operation Describe --topic claims.rejected.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:notifications --operation Read --operation Describe --topic keys.v1
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka_admin.properties --add --allow-principal User:notifications --operation Read --group notifications --resource-pattern-type prefixed
