"""The settlement service: applies spend, contract and quality events exactly once and publishes the
contract's running position on settlement.v1 after every batch that changed it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import ConfigDict, Field, ValidationError

from services.settlement import repository
from services.settlement.console import build_console
from shared.auth import Principal, requires
from shared.confirmations import SPEND_HOP
from shared.consumer import Parsed, Subscription
from shared.declaration import Declaration
from shared.events import (
    CONTRACT_CHANGED,
    NOTIFICATION,
    QUALITY_RECORDED,
    SPEND_APPLIED,
    SPEND_BATCH,
    ContractState,
    QualityResult,
    SpendBatch,
    SpendDelta,
)
from shared.http import Body
from shared.service import ServiceRuntime, serve
from shared.terms import ContractTerms
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
Viewer = Annotated[Principal, Depends(requires("viewer"))]
Editor = Annotated[Principal, Depends(requires("editor"))]
GROUP = "settlement"


async def apply_spend(uow: UnitOfWork, batch: list[Parsed[SpendDelta]]) -> None:
    correlations = {p.envelope.payload.contract_id: p.envelope.correlation for p in batch}
    await repository.apply_spend(uow.conn, [p.envelope.payload for p in batch], correlations)


async def apply_spend_batches(uow: UnitOfWork, batch: list[Parsed[SpendBatch]]) -> None:
    correlations = {d.contract_id: p.envelope.correlation for p in batch for d in p.envelope.payload.deltas}
    await repository.apply_spend(uow.conn, [d for p in batch for d in p.envelope.payload.deltas], correlations)


async def apply_contracts(uow: UnitOfWork, batch: list[Parsed[ContractState]]) -> None:
    stored = {
        p.envelope.payload.contract_id: p.envelope.correlation
        for p in batch
        if await repository.store_contract(uow.conn, p.envelope.payload)
    }
    await repository.mark_pending(uow.conn, stored)


async def apply_quality(uow: UnitOfWork, batch: list[Parsed[QualityResult]]) -> None:
    stored = {
        p.envelope.payload.contract_id: p.envelope.correlation
        for p in batch
        if await repository.store_quality(uow.conn, p.envelope.payload)
    }
    await repository.mark_pending(uow.conn, stored)


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

    @app.get("/positions", tags=["settlement"])
    async def list_positions(
        _: Viewer,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        after: Annotated[str | None, Query(max_length=64, description="the last contract id of the previous page")] = None,
    ) -> list[dict[str, Any]]:
        """Every contract's latest position, by contract id, a page at a time."""
        async with runtime.pool.acquire() as conn:
            return await repository.positions(conn, limit=limit, after=after)

    @app.get("/positions/{contract_id}/history", tags=["settlement"])
    async def position_history(contract_id: str, _: Viewer) -> list[dict[str, Any]]:
        """The contract's position a day (the day's last), oldest first."""
        async with runtime.pool.acquire() as conn:
            rows = await repository.history(conn, contract_id)
        if not rows:
            raise HTTPException(404, detail=[{"loc": ["path", "contract_id"], "msg": "no position history for this contract"}])
        return rows

    @app.get("/positions/{contract_id}", tags=["settlement"])
    async def get_position(contract_id: str, _: Viewer) -> dict[str, Any]:
        async with runtime.pool.acquire() as conn:
            rows = await repository.positions(conn, contract_id)
        if not rows:
            raise HTTPException(404, detail=[{"loc": ["path", "contract_id"], "msg": "no position for this contract"}])
        return rows[0]

    @app.post("/positions/{contract_id}/what-if", tags=["settlement"])
    async def what_if(contract_id: str, body: WhatIf, _: Viewer) -> dict[str, Any]:
        """The current position beside the same spend settled under other terms (track, MSR/MLR election,
        REACH option, rates...): each scenario overrides some fields of the contract's current terms."""
        async with runtime.pool.acquire() as conn:
            terms = await repository.current_terms(conn, contract_id)
            if terms is None:
                raise HTTPException(404, detail=[{"loc": ["path", "contract_id"], "msg": "no such contract here yet"}])
            alternatives = []
            errors: list[dict[str, Any]] = []
            for i, scenario in enumerate(body.scenarios):
                try:
                    alternatives.append(ContractTerms.model_validate({**terms.model_dump(mode="json"), **scenario.terms}))
                except ValidationError as exc:
                    for e in exc.errors(include_url=False, include_context=False, include_input=False):
                        errors.append({**e, "loc": ["body", "scenarios", i, "terms", *e["loc"]]})
            if errors:
                raise HTTPException(422, detail=errors)
            positions = await repository.what_if(conn, contract_id, alternatives)
        assert positions is not None  # the contract was found above, in the same connection
        labels = ["current", *(s.label or _label(s.terms) for s in body.scenarios)]
        return {
            "contract_id": contract_id,
            "scenarios": [
                {"label": label, "terms": p_terms.model_dump(mode="json"), "position": p.model_dump(mode="json")}
                for label, p_terms, p in zip(labels, [terms, *alternatives], positions, strict=True)
            ],
        }

    return app


class Scenario(Body):
    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(default=None, max_length=100)
    terms: dict[str, Any] = Field(description='fields of the contract\'s terms to replace, e.g. {"track": "EN"}')


class WhatIf(Body):
    model_config = ConfigDict(extra="forbid")
    scenarios: list[Scenario] = Field(min_length=1, max_length=20)


def _label(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "same terms"


def main() -> None:
    serve(DECLARATION, build, MIGRATIONS)
