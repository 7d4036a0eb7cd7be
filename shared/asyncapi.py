"""AsyncAPI 3.0 documents generated from the code: topics and keys from shared/topics.py, the envelope and each
payload's JSON Schema from shared/events.py (pydantic), who publishes and who subscribes from the declarations
(shared/declaration.py). `acoflow asyncapi` writes the whole system's (docs/asyncapi.json, which a test keeps
current, so a team using another language can generate a client); each service serves its own at /asyncapi.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from shared.declaration import Declaration
from shared.envelope import EventSpec
from shared.events import (
    API_KEY_CHANGED,
    ATTRIBUTION_CHANGED,
    CLAIM_REJECTED,
    CLAIM_SUBMITTED,
    CONTRACT_CHANGED,
    DEAD_LETTER,
    MEMBER_ID_CHANGED,
    NOTIFICATION,
    POSITION_UPDATED,
    QUALITY_RECORDED,
    RECEIPT,
    SPEND_APPLIED,
    SPEND_BATCH,
)
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

# Each topic's event and what its message key is.
EVENTS: tuple[tuple[TopicSpec, EventSpec[Any], str], ...] = (
    (CLAIMS_SUBMITTED, CLAIM_SUBMITTED, "member id"),
    (CLAIMS_REJECTED, CLAIM_REJECTED, "member id (or file:<name> for a loader's refusal)"),
    (MEMBERS, MEMBER_ID_CHANGED, "previous member id"),
    (CONTRACTS, CONTRACT_CHANGED, "contract id"),
    (ATTRIBUTION, ATTRIBUTION_CHANGED, "member id"),
    (ATTRIBUTION_ACKS, RECEIPT, "the confirming service"),
    (QUALITY, QUALITY_RECORDED, "contract id"),
    (SPEND, SPEND_APPLIED, "contract id"),
    (
        SPEND_BATCHES,
        SPEND_BATCH,
        "a contract id of the batch: every delta's contract routes to the key's partition (each contract's"
        " deltas are on one partition, in order)",
    ),
    (SPEND_ACKS, RECEIPT, "the confirming service"),
    (SETTLEMENT, POSITION_UPDATED, "contract id"),
    (NOTIFICATIONS, NOTIFICATION, "contract id"),
    (KEYS, API_KEY_CHANGED, "key id"),
    (DEADLETTER, DEAD_LETTER, "the refused record's key"),
)


def _name(topic: TopicSpec) -> str:
    return topic.name.replace(".", "_")


def _message(spec: EventSpec[Any], payload: str) -> dict[str, Any]:
    """The message of an event: the signature header, the envelope, and its payload by reference."""
    return {
        "name": spec.event_type,
        "title": f"{spec.event_type} (schema versions {', '.join(str(v) for v in sorted(spec.versions))})",
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {
                "acoflow-signature": {
                    "type": "string",
                    "description": "kid=<key id>,v1=<hex HMAC-SHA256 of the message bytes>; required on internal topics",
                }
            },
        },
        "payload": {
            "type": "object",
            "required": ["event_id", "event_type", "schema_version", "occurred_at", "producer", "payload"],
            "properties": {
                "event_id": {"type": "string", "format": "uuid", "description": "consumers dedupe by it"},
                "event_type": {"const": spec.event_type},
                "schema_version": {"enum": sorted(spec.versions)},
                "occurred_at": {"type": "string", "format": "date-time"},
                "producer": {"type": "string"},
                "correlation_id": {"type": ["string", "null"]},
                "payload": {"$ref": f"#/components/schemas/{payload}"},
            },
        },
    }


def document(parties: Sequence[Declaration], title: str = "acoflow events", description: str = "") -> dict[str, Any]:
    """The document of the topics `parties` read or write, and of what each of them does on each."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    used = {t for p in parties for t in (*p.produces, *p.consumes)}
    for topic, spec, key in EVENTS:
        if topic not in used:
            continue
        payload = spec.payload.__name__
        # Events as they are written (the serialization schema): what a consumer receives.
        schema = spec.payload.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[payload] = schema
        message = _message(spec, payload)
        channels[_name(topic)] = {
            "address": topic.name,
            "description": (
                f"{topic.partitions} partitions; key: {key}."
                + (" Compacted." if topic.compacted else "")
                + (" Internal: every message is signed." if topic.internal else " Payer input: authenticated by the broker.")
            ),
            "messages": {spec.event_type.replace(".", "_"): message},
        }
        for p in parties:
            for verb, topics in (("send", p.produces), ("receive", p.consumes)):
                if topic in topics:
                    operations[f"{p.name}_{verb}s_{_name(topic)}"] = {
                        "action": verb,
                        "channel": {"$ref": f"#/channels/{_name(topic)}"},
                        "summary": f"{p.name} {verb}s",
                    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": "1",
            "description": description
            or "Every topic of acoflow, its key, its event and who writes and reads it. Money is a JSON string.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def event_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per event type (its payload, with the definitions it uses), for docs/schemas/."""
    out: dict[str, dict[str, Any]] = {}
    for _, spec, _ in EVENTS:
        schema = spec.payload.model_json_schema(mode="serialization")
        schema["$id"] = f"acoflow/{spec.event_type}"
        schema["x-schema-versions"] = sorted(spec.versions)
        out[spec.event_type] = schema
    return out


def _kind(schema: dict[str, Any]) -> str:
    return str(schema.get("type") or schema.get("$ref") or json.dumps(schema, sort_keys=True))


def breaking_changes(old: dict[str, Any], new: dict[str, Any], path: str = "$") -> list[str]:
    """What in `new` would break a consumer written against `old` (docs/versioning.md): a property removed, made
    required, given another type or one more alternative (anyOf); an enum value removed. Adding optional
    properties or enum values is not."""
    out: list[str] = []
    if old.get("type") != new.get("type") and "type" in old and "anyOf" not in new:
        out.append(f"{path}: type {old.get('type')} became {new.get('type')}")
    old_enum, new_enum = old.get("enum"), new.get("enum")
    if old_enum is not None and new_enum is not None:
        out += [f"{path}: enum value {v!r} removed" for v in old_enum if v not in new_enum]
    if "anyOf" in old or "anyOf" in new:
        # An alternative of a kind the old schema did not have breaks a consumer; fewer alternatives, or a
        # narrower one of the same kind (a string now with a pattern), do not.
        old_kinds = {_kind(a) for a in old.get("anyOf", [old])}
        out += [f"{path}: may now be {_kind(a)}" for a in new.get("anyOf", [new]) if _kind(a) not in old_kinds]
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, prop in old_props.items():
        if name not in new_props:
            out.append(f"{path}.{name}: removed")
        else:
            out += breaking_changes(prop, new_props[name], f"{path}.{name}")
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    out += [f"{path}.{name}: now required" for name in sorted(newly_required)]
    for key in ("$defs",):
        for name, definition in old.get(key, {}).items():
            if name in new.get(key, {}):
                out += breaking_changes(definition, new[key][name], f"{path}.{key}.{name}")
    return out
