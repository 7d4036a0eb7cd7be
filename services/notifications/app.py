"""The notifications service: rules on settlement.v1 (and on claim counts and the clock), alerts on
notifications.v1, webhook delivery with retries and a dead-letter state."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI

from services.notifications.api import router
from services.notifications.domain.rules import RuleSet, default_rules
from services.notifications.handlers import (
    check_quiet_contracts,
    count_claims,
    deliver_due,
    evaluate,
    loss_threshold,
)
from shared.broker import FetchPace, batch_options
from shared.consumer import Parsed, Subscription
from shared.declaration import Declaration
from shared.events import POSITION_FIGURES, PositionFigures
from shared.logging import get_logger
from shared.service import ServiceRuntime, serve
from shared.settings import Settings
from shared.topics import CLAIMS_REJECTED, CLAIMS_SUBMITTED, DEADLETTER, KEYS, NOTIFICATIONS, SETTLEMENT
from shared.unit_of_work import UnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"
DECLARATION = Declaration(
    "notifications",
    consumes=(SETTLEMENT, CLAIMS_SUBMITTED, CLAIMS_REJECTED, KEYS),
    produces=(NOTIFICATIONS, DEADLETTER),  # alerts (and their webhook deliveries), refusals
    loops=("deliveries", "clock"),
    serves=("/deliveries", "/rules"),
)
GROUP = "notifications"
DELIVERY_BATCH = 20
log = get_logger(__name__)


def load_rules(settings: Settings) -> RuleSet:
    """The rules file when configured (defaults and per-contract rules), else the built-in defaults."""
    if settings.alert_rules_file is None:
        return default_rules(loss_threshold(settings))
    data = yaml.safe_load(settings.alert_rules_file.read_text(encoding="utf-8")) or {}
    return RuleSet.model_validate(data)


def build(runtime: ServiceRuntime) -> FastAPI:
    settings = runtime.settings
    ruleset = load_rules(settings)
    webhook = settings.webhook_url
    if webhook and len(settings.webhook_secret.get_secret_value()) < 32:
        raise SystemExit("ACOFLOW_WEBHOOK_SECRET: a webhook URL needs a secret of 32 characters or more to sign with")

    client = httpx.AsyncClient(timeout=settings.webhook_timeout_s)

    def retry_in(seconds: float) -> None:
        asyncio.get_running_loop().call_later(seconds, deliveries_loop.wake)

    async def deliver() -> int:
        return await deliver_due(runtime.units, client, settings, DELIVERY_BATCH, retry_in)

    # Woken by new deliveries and by each retry falling due; the idle wait only finds what another instance or
    # a crash left.
    deliveries_loop = runtime.loop("deliveries", deliver, DELIVERY_BATCH, idle_s=settings.outbox_idle_sleep_s)

    async def apply(uow: UnitOfWork, batch: list[Parsed[PositionFigures]]) -> None:
        uow.publish_all(await evaluate(uow.conn, batch, ruleset, webhook))

    # Positions carry a per-contract sequence, and evaluate ignores one not newer than what it has seen: that
    # is the dedupe, so each event id is not recorded as well.
    runtime.subscribe(Subscription(POSITION_FIGURES, SETTLEMENT, apply, dedupe_by_id=False, wakes=deliveries_loop))

    async def counted(submitted: int, rejected: int) -> None:
        async with runtime.units() as uow:
            uow.publish_all(await count_claims(uow.conn, submitted, rejected, ruleset, webhook))
        deliveries_loop.wake()

    # Counted for a 24-hour rate, not applied: plain subscribers (their offsets still commit after the count).
    submitted = runtime.broker.subscriber(CLAIMS_SUBMITTED.name, **batch_options(settings, GROUP + ".submitted"))
    rejected = runtime.broker.subscriber(CLAIMS_REJECTED.name, **batch_options(settings, GROUP + ".rejected"))
    submitted_fetch, rejected_fetch = FetchPace(settings, submitted, hot=False), FetchPace(settings, rejected, hot=False)

    @submitted
    async def on_submitted(records: list[Any]) -> None:
        submitted_fetch.batch()
        await counted(len(records), 0)

    @rejected
    async def on_rejected(records: list[Any]) -> None:
        rejected_fetch.batch()
        await counted(0, len(records))

    async def quiet_contracts(uow: UnitOfWork) -> int:
        uow.publish_all(await check_quiet_contracts(uow.conn, ruleset, webhook))
        deliveries_loop.wake()
        return 0

    runtime.work_loop("clock", quiet_contracts, 1, idle_s=settings.alert_check_interval_s)
    app = runtime.app("acoflow notifications")
    runtime.secure(app)

    app.state.ruleset = ruleset
    app.state.wake_deliveries = deliveries_loop.wake
    app.include_router(router)
    return app


def main() -> None:
    serve(DECLARATION, build, MIGRATIONS)
