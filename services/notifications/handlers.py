"""Notifications: evaluate rules on each contract's latest position; queue webhook deliveries; deliver
them with signed requests, exponential backoff with jitter, and a dead-letter state after the last try."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from services.notifications.domain.rules import Rule, transition
from shared.db import Conn
from shared.envelope import Envelope, new_envelope
from shared.events import NOTIFICATION, NotificationEvent, SettlementPosition
from shared.kafka import Parsed
from shared.logging import get_logger
from shared.settings import Settings
from shared.topics import NOTIFICATIONS, TopicSpec

SCHEMA = "notifications"
PRODUCER = "notifications"
Outgoing = list[tuple[TopicSpec, str, Envelope[Any]]]
log = get_logger(__name__)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _event(alert_id: str, contract_id: str, rule: str, kind: str, detail: dict[str, Any]) -> Envelope[Any]:
    payload = NotificationEvent(alert_id=alert_id, contract_id=contract_id, rule=rule, kind=kind, detail=detail)
    return new_envelope(NOTIFICATION, payload, PRODUCER)


async def evaluate(conn: Conn, batch: list[Parsed[SettlementPosition]], rules: tuple[Rule, ...], webhook: str | None) -> Outgoing:
    latest: dict[str, SettlementPosition] = {}
    for p in batch:  # only the newest position of each contract in the batch matters
        pos = p.envelope.payload
        if pos.contract_id not in latest or latest[pos.contract_id].sequence < pos.sequence:
            latest[pos.contract_id] = pos
    out: Outgoing = []
    for pos in latest.values():
        for rule in rules:
            state = await conn.fetchrow(
                f"SELECT active, last_sequence, alert_id FROM {SCHEMA}.alert_state"
                " WHERE contract_id = $1 AND rule = $2 FOR UPDATE",
                pos.contract_id,
                rule.name,
            )
            if state is not None and state["last_sequence"] >= pos.sequence:
                continue  # an older position arriving late must not flip the state back
            was_active = state is not None and state["active"]
            kind = transition(was_active, rule.holds(pos))
            alert_id = state["alert_id"] if state is not None else None
            if kind == "raised":
                alert_id = str(uuid.uuid4())
            await conn.execute(
                f"INSERT INTO {SCHEMA}.alert_state (contract_id, rule, active, last_sequence, alert_id)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (contract_id, rule) DO UPDATE"
                " SET active = excluded.active, last_sequence = excluded.last_sequence, alert_id = excluded.alert_id",
                pos.contract_id,
                rule.name,
                kind == "raised" or (was_active and kind is None),
                pos.sequence,
                alert_id,
            )
            if kind is None or alert_id is None:
                continue
            detail = {
                "description": rule.description,
                "sequence": pos.sequence,
                "projected_shared_savings_losses": str(pos.projected_shared_savings_losses),
                "projected_savings_rate": str(pos.projected_savings_rate),
                "msr": str(pos.msr),
                "downside_exposure_now": str(pos.downside_exposure_now),
            }
            out.append((NOTIFICATIONS, pos.contract_id, _event(alert_id, pos.contract_id, rule.name, kind, detail)))
            if webhook:
                body = json.dumps(
                    {"alert_id": alert_id, "contract_id": pos.contract_id, "rule": rule.name, "kind": kind, **detail},
                    sort_keys=True,
                ).encode()
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.deliveries (id, alert_id, contract_id, rule, kind, url, body)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    uuid.uuid5(uuid.UUID(alert_id), kind),
                    alert_id,
                    pos.contract_id,
                    rule.name,
                    kind,
                    webhook,
                    body,
                )
    return out


def backoff(attempt: int, settings: Settings) -> float:
    """Exponential backoff with full jitter: a random wait up to base * 2^attempt, capped."""
    ceiling = min(settings.webhook_backoff_max_s, settings.webhook_backoff_base_s * (2**attempt))
    return random.uniform(ceiling / 2, ceiling)


async def deliver_due(pool: asyncpg.Pool, client: httpx.AsyncClient, settings: Settings, limit: int = 20) -> int:
    """Attempt the deliveries that are due; each row is locked while its request is in flight."""
    done = 0
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"SELECT * FROM {SCHEMA}.deliveries WHERE status = 'pending' AND next_attempt_at <= now()"
            " ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        for row in rows:
            body = bytes(row["body"])
            headers = {
                "content-type": "application/json",
                "x-acoflow-signature": sign(settings.webhook_secret.get_secret_value(), body),
                "idempotency-key": str(row["id"]),
                "x-acoflow-alert-kind": row["kind"],
            }
            error: str | None = None
            try:
                response = await client.post(row["url"], content=body, headers=headers)
                if response.status_code >= 300:
                    error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            attempts = row["attempts"] + 1
            detail = {"delivery_id": str(row["id"]), "attempts": attempts, "alert_kind": row["kind"]}
            if error is None:
                await conn.execute(
                    f"UPDATE {SCHEMA}.deliveries SET status = 'delivered', attempts = $2, delivered_at = now(),"
                    " last_error = NULL WHERE id = $1",
                    row["id"],
                    attempts,
                )
                event = _event(row["alert_id"], row["contract_id"], row["rule"], "delivered", detail)
            elif attempts >= settings.webhook_max_attempts:
                await conn.execute(
                    f"UPDATE {SCHEMA}.deliveries SET status = 'failed', attempts = $2, last_error = $3 WHERE id = $1",
                    row["id"],
                    attempts,
                    error,
                )
                event = _event(row["alert_id"], row["contract_id"], row["rule"], "failed", {**detail, "error": error})
            else:
                wait = timedelta(seconds=backoff(attempts, settings))
                await conn.execute(
                    f"UPDATE {SCHEMA}.deliveries SET attempts = $2, last_error = $3, next_attempt_at = $4 WHERE id = $1",
                    row["id"],
                    attempts,
                    error,
                    datetime.now(UTC) + wait,
                )
                continue
            await conn.execute(
                f"INSERT INTO {SCHEMA}.outbox (topic, key, event_id, value) VALUES ($1, $2, $3, $4)",
                NOTIFICATIONS.name,
                row["contract_id"],
                event.event_id,
                event.to_bytes(),
            )
            done += 1
    return done


async def retry_failed(conn: Conn) -> int:
    result: str = await conn.execute(
        f"UPDATE {SCHEMA}.deliveries SET status = 'pending', attempts = 0, next_attempt_at = now() WHERE status = 'failed'"
    )
    return int(result.split()[-1])


def loss_threshold(settings: Settings) -> Decimal:
    return Decimal(settings.alert_projected_loss_above)
