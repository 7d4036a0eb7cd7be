"""Settlement's apply steps: what each consumed batch does, in the consumer's unit of work (SQL in repository.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.settlement import repository
from shared.consumer import Parsed
from shared.db import Conn
from shared.events import ContractState, QualityResult, SpendBatch, SpendDelta
from shared.unit_of_work import UnitOfWork


async def apply_spend(uow: UnitOfWork, batch: list[Parsed[SpendDelta]]) -> None:
    correlations = {p.envelope.payload.contract_id: p.envelope.correlation for p in batch}
    await repository.apply_spend(uow.conn, [p.envelope.payload for p in batch], correlations)


async def apply_spend_batches(uow: UnitOfWork, batch: list[Parsed[SpendBatch]]) -> None:
    correlations = {d.contract_id: p.envelope.correlation for p in batch for d in p.envelope.payload.deltas}
    await repository.apply_spend(uow.conn, [d for p in batch for d in p.envelope.payload.deltas], correlations)


async def _store_then_mark(uow: UnitOfWork, batch: list[Parsed[Any]], store: Callable[[Conn, Any], Awaitable[bool]]) -> None:
    """Store each event's state (`store` says whether it was newer than what is held) and mark the contracts
    whose state changed for a position."""
    stored = {p.envelope.payload.contract_id: p.envelope.correlation for p in batch if await store(uow.conn, p.envelope.payload)}
    await repository.mark_pending(uow.conn, stored)


async def apply_contracts(uow: UnitOfWork, batch: list[Parsed[ContractState]]) -> None:
    await _store_then_mark(uow, batch, repository.store_contract)


async def apply_quality(uow: UnitOfWork, batch: list[Parsed[QualityResult]]) -> None:
    await _store_then_mark(uow, batch, repository.store_quality)
