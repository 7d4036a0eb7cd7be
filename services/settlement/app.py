"""The settlement service: applies spend, contract and quality events exactly once and publishes the
contract's running position on settlement.v1 after every batch that changed it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.settlement import repository
from services.settlement.repository import Outgoing
from shared.auth import Principal, requires
from shared.broker import batch_options
from shared.confirmations import SPEND_HOP
from shared.consumer import Parsed
from shared.db import Conn
from shared.events import (
    CONTRACT_CHANGED,
    QUALITY_RECORDED,
    SPEND_APPLIED,
    SPEND_BATCH,
    ContractState,
    QualityResult,
    SpendBatch,
    SpendDelta,
)
from shared.service import ServiceRuntime, serve
from shared.terms import ContractTerms
from shared.topics import CONTRACTS, QUALITY, SPEND, SPEND_BATCHES

MIGRATIONS = Path(__file__).parent / "migrations"
Viewer = Annotated[Principal, Depends(requires("viewer"))]
Editor = Annotated[Principal, Depends(requires("editor"))]
GROUP = "settlement"


async def apply_spend(conn: Conn, batch: list[Parsed[SpendDelta]]) -> Outgoing:
    await repository.apply_spend(conn, [p.envelope.payload for p in batch])
    return []


async def apply_spend_batches(conn: Conn, batch: list[Parsed[SpendBatch]]) -> Outgoing:
    deltas = [d for p in batch for d in p.envelope.payload.deltas]
    await repository.apply_spend(conn, deltas)
    return []


async def apply_contracts(conn: Conn, batch: list[Parsed[ContractState]]) -> Outgoing:
    touched = {p.envelope.payload.contract_id for p in batch if await repository.store_contract(conn, p.envelope.payload)}
    await repository.mark_pending(conn, touched)
    return []


async def apply_quality(conn: Conn, batch: list[Parsed[QualityResult]]) -> Outgoing:
    touched = {p.envelope.payload.contract_id for p in batch if await repository.store_quality(conn, p.envelope.payload)}
    await repository.mark_pending(conn, touched)
    return []


def build(runtime: ServiceRuntime) -> FastAPI:
    limit = runtime.settings.settlement_recompute_max_contracts
    runtime.db_session.update(repository.DB_SESSION)

    async def publish_positions(conn: Conn) -> int:
        # Positions are recomputed apart from the consumers: when batches arrive faster than positions can be
        # computed, the contracts they touched wait here once each, however many batches touched them.
        taken, _ = await repository.publish_pending(conn, limit)
        return taken

    # Under a backlog (a file loading), a contract's position is recomputed about half as often: 200,000 lines
    # published 26,490 positions rather than 50,422 and settled in 28.1 s rather than 33.6 s (bench.pipeline);
    # a steady trickle makes small passes, which are not delayed.
    positions = runtime.work_loop(
        "positions", publish_positions, limit, queue=f"{repository.SCHEMA}.pending_positions", backlog_rest=1.0
    )
    spend = runtime.consumer(SPEND_APPLIED, SPEND, apply_spend, wakes=positions)
    spend_batches = runtime.consumer(
        SPEND_BATCH, SPEND_BATCHES, apply_spend_batches, wakes=positions, receipt=SPEND_HOP.receipt(repository.PRODUCER)
    )
    contracts = runtime.consumer(CONTRACT_CHANGED, CONTRACTS, apply_contracts, wakes=positions)
    quality = runtime.consumer(QUALITY_RECORDED, QUALITY, apply_quality, wakes=positions)

    batch = runtime.settings.settlement_batch_max_records

    @runtime.broker.subscriber(SPEND.name, **batch_options(runtime.settings, SPEND, GROUP, batch))
    async def on_spend(records: list[Any]) -> None:
        await spend.handle(records)

    # Each message carries up to MAX_SPEND_BATCH deltas: a few dozen make a large transaction already.
    @runtime.broker.subscriber(SPEND_BATCHES.name, **batch_options(runtime.settings, SPEND_BATCHES, GROUP + ".batches", 50))
    async def on_spend_batches(records: list[Any]) -> None:
        await spend_batches.handle(records)

    @runtime.broker.subscriber(CONTRACTS.name, **batch_options(runtime.settings, CONTRACTS, GROUP + ".contracts"))
    async def on_contracts(records: list[Any]) -> None:
        await contracts.handle(records)

    @runtime.broker.subscriber(QUALITY.name, **batch_options(runtime.settings, QUALITY, GROUP + ".quality"))
    async def on_quality(records: list[Any]) -> None:
        await quality.handle(records)

    runtime.republishing(repository.republish)
    app = runtime.app("acoflow settlement")
    runtime.secure(app)

    @app.get("/positions", tags=["settlement"])
    async def list_positions(_: Viewer) -> list[dict[str, Any]]:
        async with runtime.pool.acquire() as conn:
            return await repository.positions(conn)

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


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(default=None, max_length=100)
    terms: dict[str, Any] = Field(description='fields of the contract\'s terms to replace, e.g. {"track": "EN"}')


class WhatIf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scenarios: list[Scenario] = Field(min_length=1, max_length=20)


def _label(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "same terms"


def main() -> None:
    serve("settlement", build, MIGRATIONS)
