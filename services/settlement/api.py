"""Settlement's HTTP API: positions, their history, and what-ifs. Declared at module level; each route takes a
connection of the serving runtime's pool (shared/service.py: Db)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import ConfigDict, Field, ValidationError

from services.settlement import repository
from shared.auth import Principal, requires
from shared.http import Body, ExactJsonRoute
from shared.service import Db
from shared.terms import ContractTerms

Viewer = Annotated[Principal, Depends(requires("viewer"))]
router = APIRouter(prefix="/positions", tags=["settlement"], route_class=ExactJsonRoute)


@router.get("")
async def list_positions(
    _: Viewer,
    conn: Db,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    after: Annotated[str | None, Query(max_length=64, description="the last contract id of the previous page")] = None,
) -> list[dict[str, Any]]:
    """Every contract's latest position, by contract id, a page at a time."""
    return await repository.positions(conn, limit=limit, after=after)


@router.get("/{contract_id}/history")
async def position_history(contract_id: str, _: Viewer, conn: Db) -> list[dict[str, Any]]:
    """The contract's position a day (the day's last), oldest first."""
    rows = await repository.history(conn, contract_id)
    if not rows:
        raise HTTPException(404, detail=[{"loc": ["path", "contract_id"], "msg": "no position history for this contract"}])
    return rows


@router.get("/{contract_id}")
async def get_position(contract_id: str, _: Viewer, conn: Db) -> dict[str, Any]:
    rows = await repository.positions(conn, contract_id)
    if not rows:
        raise HTTPException(404, detail=[{"loc": ["path", "contract_id"], "msg": "no position for this contract"}])
    return rows[0]


class Scenario(Body):
    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(default=None, max_length=100)
    terms: dict[str, Any] = Field(description='fields of the contract\'s terms to replace, e.g. {"track": "EN"}')


class WhatIf(Body):
    model_config = ConfigDict(extra="forbid")
    scenarios: list[Scenario] = Field(min_length=1, max_length=20)


def _label(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "same terms"


def _alternatives(terms: ContractTerms, body: WhatIf) -> list[ContractTerms]:
    """Each scenario's terms: the current ones with its fields replaced; 422 naming every bad field."""
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
    return alternatives


@router.post("/{contract_id}/what-if")
async def what_if(contract_id: str, body: WhatIf, _: Viewer, conn: Db) -> dict[str, Any]:
    """The current position beside the same spend settled under other terms (track, MSR/MLR election,
    REACH option, rates...): each scenario overrides some fields of the contract's current terms."""
    terms = await repository.current_terms(conn, contract_id)
    if terms is None:
        raise HTTPException(404, detail=[{"loc": ["path", "contract_id"], "msg": "no such contract here yet"}])
    alternatives = _alternatives(terms, body)
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
