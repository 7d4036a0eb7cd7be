"""Notifications' HTTP API: webhook deliveries (list, retry) and each contract's alert rules. Declared at module
level: a route takes a pooled connection (shared/service.py: Db), and the rule set and the delivery loop's wake-up
from the app the runtime built (app.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import ConfigDict, Field, ValidationError

from services.notifications.domain.rules import RuleSet, RuleSpec
from services.notifications.handlers import SCHEMA, retry_failed
from shared.auth import Principal, allows, requires
from shared.http import Body, ExactJsonRoute
from shared.service import Db
from shared.text import Timestamp

Viewer = Annotated[Principal, Depends(requires("viewer"))]
Editor = Annotated[Principal, Depends(requires("editor"))]
router = APIRouter(tags=["notifications"], route_class=ExactJsonRoute)


def _ruleset(request: Request) -> RuleSet:
    rules: RuleSet = request.app.state.ruleset
    return rules


def _wake(request: Request) -> Callable[[], None]:
    wake: Callable[[], None] = request.app.state.wake_deliveries
    return wake


Rules = Annotated[RuleSet, Depends(_ruleset)]
Wake = Annotated[Callable[[], None], Depends(_wake)]


class RetryBody(Body):
    model_config = ConfigDict(extra="forbid")
    ids: list[uuid.UUID] | None = Field(default=None, description="the failed deliveries to retry; all when omitted")


@router.get("/deliveries")
async def deliveries(
    who: Viewer,
    conn: Db,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    before: Annotated[Timestamp | None, Query(description="created before this (the previous page's last)")] = None,
) -> list[dict[str, Any]]:
    """Webhook deliveries, newest first, a page at a time; the receiver's URL only for editors and admins."""
    url = ", url" if allows(who.role, "editor") else ""
    query = (
        f"SELECT id, alert_id, contract_id, rule, kind, status, attempts, last_error, created_at, delivered_at{url}"
        f" FROM {SCHEMA}.deliveries WHERE ($1::text IS NULL OR status = $1) AND ($3::timestamptz IS NULL OR"
        " created_at < $3) ORDER BY created_at DESC LIMIT $2"
    )
    return [dict(r) for r in await conn.fetch(query, status, limit, before)]


@router.post("/deliveries/retry")
async def retry(_: Editor, conn: Db, wake: Wake, body: RetryBody | None = None) -> dict[str, int]:
    count = await retry_failed(conn, None if body is None else body.ids)
    wake()
    return {"retried": count}


@router.get("/rules/{contract_id}")
async def rules_of(contract_id: str, _: Viewer, conn: Db, ruleset: Rules) -> list[dict[str, Any]]:
    """The rules in force for a contract: the file's defaults and its rules, then the ones set here."""
    stored = await conn.fetchval(f"SELECT rules FROM {SCHEMA}.contract_rules WHERE contract_id = $1", contract_id)
    specs = ruleset.for_contract(contract_id, None if stored is None else [RuleSpec.model_validate(r) for r in stored])
    return [s.model_dump(mode="json") for s in specs]


@router.put("/rules/{contract_id}")
async def set_rules(contract_id: str, body: list[dict[str, Any]], who: Editor, conn: Db, ruleset: Rules) -> list[dict[str, Any]]:
    """Rules for one contract (add to the defaults; the same id replaces one)."""
    specs: list[RuleSpec] = []
    errors: list[dict[str, Any]] = []
    for i, raw in enumerate(body):
        try:
            specs.append(RuleSpec.model_validate(raw))
        except ValidationError as exc:
            errors += [{**e, "loc": ["body", i, *e["loc"]]} for e in exc.errors(include_url=False, include_context=False)]
    if errors:
        raise HTTPException(422, detail=errors)
    await conn.execute(
        f"INSERT INTO {SCHEMA}.contract_rules (contract_id, rules) VALUES ($1, $2) ON CONFLICT (contract_id)"
        " DO UPDATE SET rules = excluded.rules, updated_at = now()",
        contract_id,
        [s.model_dump(mode="json") for s in specs],
    )
    return await rules_of(contract_id, who, conn, ruleset)
