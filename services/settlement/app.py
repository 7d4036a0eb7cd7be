"""The settlement service: applies spend, contract and quality events exactly once and publishes the
contract's running position on settlement.v1 after every batch that changed it."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.settlement import repository
from services.settlement.api import router
from services.settlement.console import build_console
from services.settlement.handlers import apply_contracts, apply_quality, apply_spend, apply_spend_batches
from shared.confirmations import SPEND_HOP
from shared.consumer import Subscription
from shared.declaration import Declaration
from shared.events import (
    CONTRACT_CHANGED,
    NOTIFICATION,
    QUALITY_RECORDED,
    SPEND_APPLIED,
    SPEND_BATCH,
)
from shared.service import ServiceRuntime, serve
from shared.topics import CONTRACTS, DEADLETTER, KEYS, NOTIFICATIONS, QUALITY, SETTLEMENT, SPEND, SPEND_ACKS, SPEND_BATCHES
from shared.unit_of_work import UnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"
DECLARATION = Declaration(
    "settlement",
    consumes=(SPEND_BATCHES, SPEND, CONTRACTS, QUALITY, NOTIFICATIONS, KEYS),
    produces=(SETTLEMENT, SPEND_ACKS, DEADLETTER),  # positions, receipts, refusals
    loops=("positions", "republish"),
    serves=("/positions", "/ui"),
)


def build(runtime: ServiceRuntime) -> FastAPI:
    limit = runtime.settings.settlement_recompute_max_contracts
    runtime.db_session.update(repository.DB_SESSION)

    async def publish_positions(uow: UnitOfWork) -> int:
        # Positions are recomputed apart from the consumers: when batches arrive faster than positions can be
        # computed, the contracts they touched wait here once each, however many batches touched them.
        taken, events = await repository.publish_pending(uow.conn, limit)
        uow.wrote_outbox(len(events))
        return taken

    # Under a backlog (a file loading) a full pass rests as long as it took, so a contract's position is
    # recomputed once for what arrived meanwhile rather than once a batch. A steady feed wakes the loop on every
    # spend commit; passes at most every positions_pace_s take the contracts those commits touched together, in
    # one transaction and one relay send. (docs/benchmarks.md has what each bought.)
    positions = runtime.work_loop(
        "positions",
        publish_positions,
        limit,
        queue=f"{repository.SCHEMA}.pending_positions",
        backlog_rest=1.0,
        pace_s=runtime.settings.positions_pace_s,
    )
    receipt = SPEND_HOP.receipt(repository.PRODUCER)
    batch = runtime.settings.settlement_batch_max_records
    runtime.subscribe(Subscription(SPEND_APPLIED, SPEND, apply_spend, max_records=batch, wakes=positions))
    # Each message carries up to MAX_SPEND_BATCH deltas: a few dozen make a large transaction already.
    runtime.subscribe(
        Subscription(SPEND_BATCH, SPEND_BATCHES, apply_spend_batches, "batches", 50, receipt=receipt, wakes=positions)
    )
    runtime.subscribe(Subscription(CONTRACT_CHANGED, CONTRACTS, apply_contracts, wakes=positions))
    runtime.subscribe(Subscription(QUALITY_RECORDED, QUALITY, apply_quality, wakes=positions))
    runtime.subscribe(Subscription(NOTIFICATION, NOTIFICATIONS, repository.store_alerts))
    runtime.republishing(repository.republish)
    app = runtime.app("acoflow settlement")
    runtime.secure(app, own_auth=("/ui",))
    signing = runtime.event_keys
    app.include_router(build_console(runtime, repository.SCHEMA, None if signing is None else signing.keys[signing.signing_id]))

    app.include_router(router)
    return app


def main() -> None:
    serve(DECLARATION, build, MIGRATIONS)
