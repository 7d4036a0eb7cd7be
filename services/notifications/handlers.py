"""Notifications: evaluate rules on each contract's latest position; queue webhook deliveries; deliver
them with signed requests, exponential backoff with jitter, and a dead-letter state after the last try."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from prometheus_client import Counter, Gauge

from services.notifications.domain.rules import (
    PORTFOLIO,
    POSITION_RULES,
    AlertState,
    Check,
    RuleSet,
    RuleSpec,
    decide,
    position_value,
)
from shared.consumer import Parsed
from shared.db import Conn
from shared.envelope import Envelope, new_envelope
from shared.events import NOTIFICATION, NotificationEvent, PositionFigures
from shared.logging import get_logger
from shared.metrics import REGISTRY
from shared.settings import Settings
from shared.topics import NOTIFICATIONS
from shared.unit_of_work import Outgoing, UnitOfWork, UnitsOfWork

SCHEMA = "notifications"
PRODUCER = "notifications"
log = get_logger(__name__)
ALERTS = Counter("acoflow_alerts_total", "Alert transitions", ["rule", "kind"], registry=REGISTRY)
WEBHOOK_ATTEMPTS = Counter(
    "acoflow_webhook_attempts_total",
    "Webhook delivery attempts by outcome: delivered, retry (failed, tried again later), failed (no attempts left)",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_BACKLOG = Gauge(
    "acoflow_webhook_deliveries", "Webhook deliveries not delivered, by status (pending, failed)", ["status"], registry=REGISTRY
)
WEBHOOK_OLDEST_PENDING = Gauge(
    "acoflow_webhook_oldest_pending_age_seconds", "Age of the oldest pending webhook delivery (0: none)", registry=REGISTRY
)


SIGNATURE_TOLERANCE_S = 300


def sign(secret: str, body: bytes, at: int | None = None) -> str:
    """The webhook signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`. The timestamp is
    signed with the body, so a captured request cannot be replayed outside the receiver's tolerance window."""
    t = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, header: str, body: bytes, now: int | None = None, tolerance_s: int = SIGNATURE_TOLERANCE_S) -> bool:
    """What a receiver runs (docs/webhooks.md): the signature matches the body and its time is within the window."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((int(time.time()) if now is None else now) - t) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


def _event(
    alert_id: str, contract_id: str, rule: str, kind: str, detail: dict[str, Any], correlation_id: str | None = None
) -> Envelope[Any]:
    payload = NotificationEvent(alert_id=alert_id, contract_id=contract_id, rule=rule, kind=kind, detail=detail)
    return new_envelope(NOTIFICATION, payload, PRODUCER, correlation_id=correlation_id)


async def _rules_for(conn: Conn, ruleset: RuleSet, contract_ids: list[str]) -> dict[str, tuple[RuleSpec, ...]]:
    rows = await conn.fetch(
        f"SELECT contract_id, rules FROM {SCHEMA}.contract_rules WHERE contract_id = ANY($1::text[])", contract_ids
    )
    stored = {r["contract_id"]: [RuleSpec.model_validate(x) for x in r["rules"]] for r in rows}
    return {cid: ruleset.for_contract(cid, stored.get(cid)) for cid in contract_ids}


def _alert(state: AlertState) -> tuple[bool, str | None]:
    return state.active, state.alert_id


async def apply_checks(conn: Conn, checks: list[Check], webhook: str | None) -> Outgoing:
    """Move the alert states of a whole batch of checks with one read (domain/rules.py decides) and one write;
    publish each transition and queue its webhook delivery."""
    if not checks:
        return []
    rows = await conn.fetch(
        f"SELECT s.contract_id, s.rule, s.active, s.last_sequence, s.alert_id FROM {SCHEMA}.alert_state s"
        " JOIN unnest($1::text[], $2::text[]) AS k(contract_id, rule) ON s.contract_id = k.contract_id AND s.rule = k.rule"
        " ORDER BY s.contract_id, s.rule FOR UPDATE OF s",
        [c.contract_id for c in checks],
        [c.spec.id for c in checks],
    )
    before = {(r["contract_id"], r["rule"]): AlertState(r["active"], r["last_sequence"], r["alert_id"]) for r in rows}
    states, alerts = decide(checks, before, lambda: str(uuid.uuid4()))
    # Stored only when an alert is raised or resolved: that a check held no news needs no write (a key never
    # stored reads as inactive), and positions older than one already seen are dropped before (evaluate).
    unset = AlertState()
    changed = {k: v for k, v in states.items() if _alert(v) != _alert(before.get(k, unset))}
    if changed:
        await conn.execute(
            f"INSERT INTO {SCHEMA}.alert_state (contract_id, rule, active, last_sequence, alert_id)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::bigint[], $5::text[])"
            " ON CONFLICT (contract_id, rule) DO UPDATE"
            " SET active = excluded.active, last_sequence = excluded.last_sequence, alert_id = excluded.alert_id",
            [k[0] for k in changed],
            [k[1] for k in changed],
            [v.active for v in changed.values()],
            [v.last_sequence for v in changed.values()],
            [v.alert_id for v in changed.values()],
        )
    out: Outgoing = []
    deliveries: list[tuple[Any, ...]] = []
    for a in alerts:
        cid, rule = a.check.key
        out.append((NOTIFICATIONS, cid, _event(a.alert_id, cid, rule, a.kind, a.detail, a.check.correlation_id)))
        ALERTS.labels(a.check.spec.rule, a.kind).inc()
        if webhook:
            body = json.dumps({"alert_id": a.alert_id, "contract_id": cid, "rule": rule, "kind": a.kind, **a.detail},
                              sort_keys=True).encode()  # fmt: skip
            deliveries.append((uuid.uuid5(uuid.UUID(a.alert_id), a.kind), a.alert_id, cid, rule, a.kind, webhook, body))
    if deliveries:
        # Created in transition order, which is the order they are delivered in.
        await conn.executemany(
            f"INSERT INTO {SCHEMA}.deliveries (id, alert_id, contract_id, rule, kind, url, body, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp())",
            deliveries,
        )
    return out


async def evaluate(conn: Conn, batch: list[Parsed[PositionFigures]], ruleset: RuleSet, webhook: str | None) -> Outgoing:
    latest: dict[str, PositionFigures] = {}
    correlation: dict[str, str] = {}
    for p in batch:  # only the newest position of each contract in the batch matters
        pos = p.envelope.payload
        if pos.contract_id not in latest or latest[pos.contract_id].sequence < pos.sequence:
            latest[pos.contract_id] = pos
            correlation[pos.contract_id] = p.envelope.correlation
    if not latest:
        return []
    ids = sorted(latest)
    # The contract's newest sequence seen is kept here, and only positions newer than it are evaluated: one
    # redelivered or republished changes nothing, so alert states need not carry the sequence of every check.
    newer = await conn.fetch(
        f"INSERT INTO {SCHEMA}.contract_activity (contract_id, lines_applied, last_spend_at, last_sequence)"
        " SELECT c, l, now(), s FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS x(c, l, s)"
        " ON CONFLICT (contract_id) DO UPDATE SET lines_applied = excluded.lines_applied,"
        " last_sequence = excluded.last_sequence, last_spend_at = CASE WHEN excluded.lines_applied"
        f" <> {SCHEMA}.contract_activity.lines_applied THEN now() ELSE {SCHEMA}.contract_activity.last_spend_at END"
        f" WHERE {SCHEMA}.contract_activity.last_sequence < excluded.last_sequence RETURNING contract_id",
        ids,
        [latest[c].lines_applied for c in ids],
        [latest[c].sequence for c in ids],
    )
    ids = sorted(r["contract_id"] for r in newer)
    if not ids:
        return []
    rules = await _rules_for(conn, ruleset, ids)
    checks: list[Check] = []
    for cid in ids:
        pos = latest[cid]
        detail = {
            "sequence": pos.sequence,
            "projected_shared_savings_losses": str(pos.projected_shared_savings_losses),
            "projected_savings_rate": str(pos.projected_savings_rate),
            "msr": str(pos.msr),
            "downside_exposure_now": str(pos.downside_exposure_now),
            "downside_exposure_at_cap": str(pos.downside_exposure_at_cap),
        }
        checks += [
            Check(cid, spec, position_value(spec, pos, ruleset.warmup), pos.sequence, detail, correlation[cid])
            for spec in rules[cid]
            if spec.rule in POSITION_RULES
        ]
    return await apply_checks(conn, checks, webhook)


async def check_quiet_contracts(conn: Conn, ruleset: RuleSet, webhook: str | None) -> Outgoing:
    """ "No claims for N days": by the clock, so it runs on a timer, not on events."""
    rows = await conn.fetch(
        f"SELECT contract_id, extract(epoch FROM now() - last_spend_at) / 86400 AS days FROM {SCHEMA}.contract_activity"
        " ORDER BY contract_id"
    )
    rules = await _rules_for(conn, ruleset, [r["contract_id"] for r in rows])
    checks = [
        Check(r["contract_id"], spec, Decimal(r["days"]), None, {"days_without_claims": str(round(Decimal(r["days"]), 2))})
        for r in rows
        for spec in rules[r["contract_id"]]
        if spec.rule == "no_claims_for_days"
    ]
    return await apply_checks(conn, checks, webhook)


async def count_claims(conn: Conn, submitted: int, rejected: int, ruleset: RuleSet, webhook: str | None) -> Outgoing:
    """Count claim lines in and refused, then check the portfolio's rejected-claim rate over the last 24 hours.
    Counting is at-least-once (a redelivered batch counts again): a rate, not money."""
    await conn.execute(
        f"INSERT INTO {SCHEMA}.claim_counts (hour, submitted, rejected) VALUES (date_trunc('hour', now()), $1, $2)"
        f" ON CONFLICT (hour) DO UPDATE SET submitted = {SCHEMA}.claim_counts.submitted + excluded.submitted,"
        f" rejected = {SCHEMA}.claim_counts.rejected + excluded.rejected",
        submitted,
        rejected,
    )
    specs = [s for s in (await _rules_for(conn, ruleset, [PORTFOLIO]))[PORTFOLIO] if s.rule == "rejected_rate_above"]
    if not specs:
        return []
    row = await conn.fetchrow(
        f"SELECT coalesce(sum(submitted), 0) AS submitted, coalesce(sum(rejected), 0) AS rejected FROM {SCHEMA}.claim_counts"
        " WHERE hour > now() - interval '24 hours'"
    )
    assert row is not None  # an aggregate always returns one row
    value = Decimal(row["rejected"]) / Decimal(row["submitted"]) if row["submitted"] else None
    detail = {"submitted_24h": row["submitted"], "rejected_24h": row["rejected"]}
    return await apply_checks(conn, [Check(PORTFOLIO, spec, value, None, detail) for spec in specs], webhook)


def backoff(attempt: int, settings: Settings) -> float:
    """Exponential backoff with full jitter: a random wait up to base * 2^attempt, capped."""
    ceiling = min(settings.webhook_backoff_max_s, settings.webhook_backoff_base_s * (2**attempt))
    return random.uniform(ceiling / 2, ceiling)


async def deliver_due(
    units: UnitsOfWork,
    client: httpx.AsyncClient,
    settings: Settings,
    limit: int = 20,
    retry_in: Callable[[float], None] = lambda _: None,
) -> int:
    """Attempt the deliveries that are due: lease them in one short transaction, post outside any transaction,
    record each outcome in a transaction of its own. Returns how many reached an end (delivered or failed);
    `retry_in` is told when each delivery to try again falls due."""
    lease = timedelta(seconds=settings.webhook_lease_s)
    async with units() as uow:
        rows = await uow.conn.fetch(
            f"UPDATE {SCHEMA}.deliveries SET leased_until = now() + $2::interval WHERE id IN"
            f" (SELECT id FROM {SCHEMA}.deliveries d WHERE status = 'pending' AND next_attempt_at <= now()"
            " AND (leased_until IS NULL OR leased_until < now())"
            # One (contract, rule) delivers in order: a resolution never overtakes the raise it resolves.
            f" AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.deliveries e WHERE e.status IN ('pending', 'failed')"
            " AND e.contract_id = d.contract_id AND e.rule = d.rule AND e.created_at < d.created_at)"
            " ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING *",
            limit,
            lease,
        )
    done = 0
    for n, row in enumerate(rows):
        try:
            error = await _post(client, settings, row)
            async with units() as uow:
                done += await _record_outcome(uow, settings, row, error, retry_in)
        except asyncio.CancelledError:
            # A stopping service hands back what it leased, so a restart sends it now rather than after the lease.
            await asyncio.shield(_release(units, rows[n:]))
            raise
    await _measure_backlog(units)
    return done


async def _release(units: UnitsOfWork, rows: list[asyncpg.Record]) -> None:
    async with units() as uow:
        for row in rows:
            await uow.conn.execute(
                f"UPDATE {SCHEMA}.deliveries SET leased_until = NULL WHERE id = $1 AND leased_until = $2",
                row["id"],
                row["leased_until"],
            )


async def _measure_backlog(units: UnitsOfWork) -> None:
    """The pending and failed deliveries for /metrics, once a pass (the loop passes when woken, when a retry
    falls due, or every few seconds when idle)."""
    async with units() as uow:
        rows = await uow.conn.fetch(
            f"SELECT status, count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age"
            f" FROM {SCHEMA}.deliveries WHERE status IN ('pending', 'failed') GROUP BY status"
        )
    found = {r["status"]: r for r in rows}
    for status in ("pending", "failed"):
        WEBHOOK_BACKLOG.labels(status).set(found[status]["n"] if status in found else 0)
    WEBHOOK_OLDEST_PENDING.set(float(found["pending"]["age"]) if "pending" in found else 0)


async def _post(client: httpx.AsyncClient, settings: Settings, row: asyncpg.Record) -> str | None:
    body = bytes(row["body"])
    headers = {
        "content-type": "application/json",
        "x-acoflow-signature": sign(settings.webhook_secret.get_secret_value(), body),
        "idempotency-key": str(row["id"]),
        "x-acoflow-alert-kind": row["kind"],
    }
    try:
        response = await client.post(row["url"], content=body, headers=headers)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return f"HTTP {response.status_code}" if response.status_code >= 300 else None


async def _record_outcome(
    uow: UnitOfWork, settings: Settings, row: asyncpg.Record, error: str | None, retry_in: Callable[[float], None]
) -> int:
    """Store one attempt's outcome, if this process still holds the lease; 1 when the delivery ended."""
    conn = uow.conn
    attempts = row["attempts"] + 1
    detail = {"delivery_id": str(row["id"]), "attempts": attempts, "alert_kind": row["kind"]}
    lease = row["leased_until"]
    if error is None:
        status = await conn.execute(
            f"UPDATE {SCHEMA}.deliveries SET status = 'delivered', attempts = $2, delivered_at = now(), last_error = NULL,"
            " leased_until = NULL WHERE id = $1 AND leased_until = $3",
            row["id"],
            attempts,
            lease,
        )
        event = _event(row["alert_id"], row["contract_id"], row["rule"], "delivered", detail)
        outcome = "delivered"
    elif attempts >= settings.webhook_max_attempts:
        status = await conn.execute(
            f"UPDATE {SCHEMA}.deliveries SET status = 'failed', attempts = $2, last_error = $3, leased_until = NULL"
            " WHERE id = $1 AND leased_until = $4",
            row["id"],
            attempts,
            error,
            lease,
        )
        event = _event(row["alert_id"], row["contract_id"], row["rule"], "failed", {**detail, "error": error})
        outcome = "failed"
    else:
        wait = backoff(attempts, settings)
        await conn.execute(
            f"UPDATE {SCHEMA}.deliveries SET attempts = $2, last_error = $3, next_attempt_at = $4, leased_until = NULL"
            " WHERE id = $1 AND leased_until = $5",
            row["id"],
            attempts,
            error,
            datetime.now(UTC) + timedelta(seconds=wait),
            lease,
        )
        WEBHOOK_ATTEMPTS.labels("retry").inc()
        retry_in(wait)
        return 0
    if status.endswith(" 0"):
        return 0  # the lease ran out and another attempt owns the delivery now
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    uow.publish(NOTIFICATIONS, row["contract_id"], event)
    return 1


async def retry_failed(conn: Conn, ids: list[uuid.UUID] | None = None) -> int:
    """Back to pending with a fresh budget of attempts: all failed deliveries, or the given ones."""
    result: str = await conn.execute(
        f"UPDATE {SCHEMA}.deliveries SET status = 'pending', attempts = 0, next_attempt_at = now()"
        " WHERE status = 'failed' AND ($1::uuid[] IS NULL OR id = ANY($1::uuid[]))",
        ids,
    )
    return int(result.split()[-1])


def loss_threshold(settings: Settings) -> Decimal:
    return Decimal(settings.alert_projected_loss_above)
