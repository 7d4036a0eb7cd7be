"""HTTP routes of the contracts service: thin; validation by the models, persistence in repository."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from services.contracts import repository
from services.contracts.domain.roster import RosterMember, parse_roster_csv
from shared.auth import Principal, requires
from shared.db import Conn
from shared.events import ContractState, QualityResult
from shared.http import Body, ExactJsonRoute
from shared.money import Rate
from shared.runtime_types import Pooled
from shared.terms import ContractTerms, QualityStandard
from shared.text import Text

ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
Viewer = Annotated[Principal, Depends(requires("viewer"))]
Editor = Annotated[Principal, Depends(requires("editor"))]


class ContractIn(Body):
    model_config = ConfigDict(extra="forbid")
    contract_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    name: Text = Field(min_length=1, max_length=200)
    payer: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    terms: ContractTerms
    roster: list[RosterMember] | None = None


class ContractUpdate(Body):
    model_config = ConfigDict(extra="forbid")
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    payer: str | None = Field(default=None, min_length=1, max_length=64, pattern=ID_PATTERN)
    terms: ContractTerms | None = None
    roster: list[RosterMember] | None = None


class QualityIn(Body):
    model_config = ConfigDict(extra="forbid")
    performance_year: int = Field(ge=2012, le=2100)
    quality_score: Rate = Field(ge=0, le=1)
    quality_standard: QualityStandard = "met"


def build_router(pooled: Pooled) -> APIRouter:
    router = APIRouter(prefix="/contracts", tags=["contracts"], route_class=ExactJsonRoute)

    async def _existing(conn: Conn, contract_id: str) -> ContractState:
        state = await repository.latest(conn, contract_id, lock=True)
        if state is None:
            raise HTTPException(404, detail=[{"loc": ["path", "contract_id"], "msg": "no such contract"}])
        return state

    @router.post("", status_code=201)
    async def create(body: ContractIn, who: Editor) -> ContractState:
        async with pooled.units() as uow:
            try:
                state = await repository.save_version(
                    uow,
                    contract_id=body.contract_id,
                    name=body.name,
                    payer=body.payer,
                    terms=body.terms,
                    members=body.roster or [],
                    actor=who.actor,
                    action="create",
                    expect_new=True,
                )
            except repository.VersionConflict as exc:
                raise HTTPException(409, detail=[{"loc": ["body", "contract_id"], "msg": str(exc)}]) from exc
        return state

    @router.put("/{contract_id}")
    async def update(contract_id: str, body: ContractUpdate, who: Editor) -> ContractState:
        async with pooled.units() as uow:
            conn = uow.conn
            prev = await _existing(conn, contract_id)
            state = await repository.save_version(
                uow,
                contract_id=contract_id,
                name=body.name or prev.name,
                payer=body.payer or prev.payer,
                terms=body.terms or prev.terms,
                members=body.roster,
                actor=who.actor,
                action="update",
            )
        return state

    @router.put("/{contract_id}/roster", openapi_extra={"requestBody": ROSTER_BODY})
    async def put_roster(contract_id: str, request: Request, who: Editor) -> ContractState:
        raw = await request.body()
        try:
            if request.headers.get("content-type", "").startswith("text/csv"):
                members = parse_roster_csv(raw.decode("utf-8"))
            else:
                members = ROSTER.validate_python(_json_list(raw))
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            raise HTTPException(422, detail=[{**e, "loc": ["body", *e["loc"]]} for e in errors]) from exc
        except json.JSONDecodeError as exc:
            raise HTTPException(400, detail=[{"loc": ["body"], "msg": f"malformed JSON: {exc}"}]) from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPException(422, detail=[{"loc": ["body", "roster"], "msg": str(exc)}]) from exc
        async with pooled.units() as uow:
            conn = uow.conn
            prev = await _existing(conn, contract_id)
            state = await repository.save_version(
                uow,
                contract_id=contract_id,
                name=prev.name,
                payer=prev.payer,
                terms=prev.terms,
                members=members,
                actor=who.actor,
                action="roster",
            )
        return state

    @router.post("/{contract_id}/quality", status_code=201)
    async def post_quality(contract_id: str, body: QualityIn, who: Editor) -> QualityResult:
        async with pooled.units() as uow:
            conn = uow.conn
            await _existing(conn, contract_id)
            result = await repository.record_quality(
                uow, contract_id, body.performance_year, body.quality_score, body.quality_standard, who.actor
            )
        return result

    @router.get("")
    async def list_contracts(_: Viewer) -> list[ContractState]:
        async with pooled.pool.acquire() as conn:
            return await repository.list_latest(conn)

    @router.get("/{contract_id}")
    async def get(contract_id: str, _: Viewer) -> ContractState:
        async with pooled.pool.acquire() as conn:
            state = await repository.latest(conn, contract_id)
        if state is None:
            raise HTTPException(404, detail=[{"loc": ["path", "contract_id"], "msg": "no such contract"}])
        return state

    @router.get("/{contract_id}/history")
    async def get_history(contract_id: str, _: Viewer) -> list[dict[str, Any]]:
        async with pooled.pool.acquire() as conn:
            rows = await repository.history(conn, contract_id)
        if not rows:
            raise HTTPException(404, detail=[{"loc": ["path", "contract_id"], "msg": "no such contract"}])
        return rows

    return router


ROSTER = TypeAdapter(list[RosterMember])
_MEMBERS = ROSTER.json_schema()
# The roster body is read by hand (JSON or CSV), so its document says what it takes.
ROSTER_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    _MEMBERS,
                    {"type": "object", "properties": {"roster": _MEMBERS}, "required": ["roster"]},
                ]
            }
        },
        "text/csv": {"schema": {"type": "string", "description": "member_id,enrollment_type,start,end"}},
    },
}


def _json_list(raw: bytes) -> list[Any]:
    data = json.loads(raw or b"null")
    if isinstance(data, dict) and "roster" in data:
        data = data["roster"]
    if not isinstance(data, list):
        raise ValueError('roster: expected a JSON list of members (or {"roster": [...]})')
    return data
