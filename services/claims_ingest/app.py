"""The claims_ingest service: validates and attributes claim lines, re-keys members, emits spend and rejects."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field

from services.claims_ingest.handlers import (
    SCHEMA,
    apply_attribution,
    apply_claims,
    apply_id_changes,
    reject_claim,
    store_rejects,
)
from shared.auth import Principal, requires
from shared.confirmations import ATTRIBUTION_HOP, SPEND_HOP
from shared.consumer import Subscription
from shared.events import ATTRIBUTION_CHANGED, CLAIM_REJECTED, CLAIM_SUBMITTED, MEMBER_ID_CHANGED
from shared.service import ServiceRuntime, serve
from shared.topics import ATTRIBUTION, CLAIMS_REJECTED, CLAIMS_SUBMITTED, MEMBERS

MIGRATIONS = Path(__file__).parent / "migrations"
Viewer = Annotated[Principal, Depends(requires("viewer"))]
Editor = Annotated[Principal, Depends(requires("editor"))]
GROUP = "claims_ingest"


class Replayed(BaseModel):
    event_ids: list[uuid.UUID] = Field(min_length=1, max_length=100_000)


def build(runtime: ServiceRuntime) -> FastAPI:
    runtime.confirm_sends(SPEND_HOP)
    # A claim line's effects are keyed by its line_key (stored once, spend ids derived from it), which dedupes a
    # redelivered or re-published line however its event id came: no per-event id record is needed.
    runtime.subscribe(Subscription(CLAIM_SUBMITTED, CLAIMS_SUBMITTED, apply_claims, reject=reject_claim, dedupe_by_id=False))
    receipt = ATTRIBUTION_HOP.receipt(GROUP)
    runtime.subscribe(Subscription(ATTRIBUTION_CHANGED, ATTRIBUTION, apply_attribution, "attribution", receipt=receipt))
    runtime.subscribe(Subscription(MEMBER_ID_CHANGED, MEMBERS, apply_id_changes, "members"))
    runtime.subscribe(Subscription(CLAIM_REJECTED, CLAIMS_REJECTED, store_rejects, "rejects"))

    app = runtime.app("acoflow claims_ingest")
    runtime.secure(app)

    @app.get("/rejects", tags=["rejects"])
    async def list_rejects(
        _: Viewer, status: Literal["open", "replayed", "all"] = "open", limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Rejected claim lines with their reasons and original payload, oldest first."""
        if not 1 <= limit <= 100_000:
            raise HTTPException(422, "limit: between 1 and 100000")
        query = (
            "SELECT event_id, received_at, source_topic, source, reasons, original, original_encoding, original_size, status,"
            " replayed_at"
            f" FROM {SCHEMA}.rejects WHERE ($1 = 'all' OR status = $1) ORDER BY received_at, event_id LIMIT $2"
        )
        async with runtime.pool.acquire() as conn:
            return [dict(r) for r in await conn.fetch(query, status, limit)]

    @app.post("/rejects/replayed", tags=["rejects"])
    async def mark_replayed(body: Replayed, _: Editor) -> dict[str, int]:
        """Mark rejects as replayed once `acoflow rejects replay` has re-submitted them."""
        async with runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                f"UPDATE {SCHEMA}.rejects SET status = 'replayed', replayed_at = now()"
                " WHERE event_id = ANY($1::uuid[]) AND status = 'open' RETURNING event_id",
                body.event_ids,
            )
        return {"replayed": len(rows)}

    return app


def main() -> None:
    serve("claims_ingest", build, MIGRATIONS)
