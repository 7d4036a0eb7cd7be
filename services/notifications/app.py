"""The notifications service: rules on settlement.v1, alerts on notifications.v1, webhook delivery."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from services.notifications.domain.rules import default_rules
from services.notifications.handlers import SCHEMA, deliver_due, evaluate, loss_threshold, retry_failed
from shared.db import Conn
from shared.events import POSITION_UPDATED, SettlementPosition
from shared.kafka import Parsed, batch_options
from shared.logging import get_logger
from shared.service import ServiceRuntime, serve
from shared.topics import SETTLEMENT

MIGRATIONS = Path(__file__).parent / "migrations"
GROUP = "notifications"
log = get_logger(__name__)


def build(runtime: ServiceRuntime) -> FastAPI:
    settings = runtime.settings
    rules = default_rules(loss_threshold(settings))
    wake = asyncio.Event()

    async def apply(conn: Conn, batch: list[Parsed[SettlementPosition]]) -> Any:
        out = await evaluate(conn, batch, rules, settings.webhook_url)
        wake.set()
        return out

    positions = runtime.consumer(POSITION_UPDATED, SETTLEMENT, apply)

    @runtime.broker.subscriber(SETTLEMENT.name, **batch_options(settings, GROUP))
    async def on_position(records: list[Any]) -> None:
        await positions.handle(records)

    async def delivery_loop() -> None:
        async with httpx.AsyncClient(timeout=settings.webhook_timeout_s) as client:
            while True:
                try:
                    if await deliver_due(runtime.pool, client, settings):
                        runtime.wake_relay()
                        continue
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("delivery_loop_retry", error=type(exc).__name__)
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), 0.5)
                except TimeoutError:
                    pass

    runtime.background.append(delivery_loop)
    app = runtime.app("acoflow notifications")

    @app.get("/deliveries", tags=["notifications"])
    async def deliveries(status: str | None = None) -> list[dict[str, Any]]:
        query = (
            "SELECT id, alert_id, contract_id, rule, kind, status, attempts, last_error, created_at, delivered_at"
            f" FROM {SCHEMA}.deliveries"
        )
        async with runtime.pool.acquire() as conn:
            rows = await (
                conn.fetch(query + " WHERE status = $1 ORDER BY created_at", status)
                if status
                else conn.fetch(query + " ORDER BY created_at")
            )
        return [dict(r) for r in rows]

    @app.post("/deliveries/retry", tags=["notifications"])
    async def retry() -> dict[str, int]:
        async with runtime.pool.acquire() as conn:
            count = await retry_failed(conn)
        wake.set()
        return {"retried": count}

    return app


def main() -> None:
    serve("notifications", build, MIGRATIONS)
