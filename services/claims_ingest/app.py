"""The claims_ingest service: validates and attributes claim lines, re-keys members, emits spend and rejects."""

from __future__ import annotations

import uuid
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import Field

from services.claims_ingest.handlers import (
    SCHEMA,
    apply_attribution,
    apply_claims,
    apply_id_changes,
    reject_claim,
    store_rejects,
)
from shared.auth import Principal, allows, requires
from shared.confirmations import ATTRIBUTION_HOP, SPEND_HOP
from shared.consumer import Subscription
from shared.declaration import Declaration
from shared.events import ATTRIBUTION_CHANGED, CLAIM_REJECTED, CLAIM_SUBMITTED, MEMBER_ID_CHANGED
from shared.http import Body
from shared.service import ServiceRuntime, serve
from shared.topics import (
    ATTRIBUTION,
    ATTRIBUTION_ACKS,
    CLAIMS_REJECTED,
    CLAIMS_SUBMITTED,
    DEADLETTER,
    KEYS,
    MEMBERS,
    SPEND_ACKS,
    SPEND_BATCHES,
)
from shared.unit_of_work import UnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"
DECLARATION = Declaration(
    "claims_ingest",
    consumes=(CLAIMS_SUBMITTED, ATTRIBUTION, MEMBERS, CLAIMS_REJECTED, SPEND_ACKS, KEYS),
    produces=(SPEND_BATCHES, CLAIMS_REJECTED, ATTRIBUTION_ACKS, DEADLETTER),  # spend, refused lines, receipts, refusals
    loops=(f"resend-{SPEND_BATCHES.name}", "purge-originals"),
    serves=("/rejects",),
)
Viewer = Annotated[Principal, Depends(requires("viewer"))]
Editor = Annotated[Principal, Depends(requires("editor"))]
GROUP = "claims_ingest"


class Replayed(Body):
    event_ids: list[uuid.UUID] = Field(min_length=1, max_length=100_000)


def build(runtime: ServiceRuntime) -> FastAPI:
    runtime.confirm_sends(SPEND_HOP)
    # A claim line's effects are keyed by its line_key (stored once, spend ids derived from it), which dedupes a
    # redelivered or re-published line however its event id came: no per-event id record is needed.
    # Spend is batched per partition of spend.v2, as many as the services create it with.
    partitions = runtime.settings.topic_partitions or SPEND_BATCHES.partitions
    claims = partial(apply_claims, partitions=partitions)
    runtime.subscribe(Subscription(CLAIM_SUBMITTED, CLAIMS_SUBMITTED, claims, reject=reject_claim, dedupe_by_id=False))
    receipt = ATTRIBUTION_HOP.receipt(GROUP)
    attribution = partial(apply_attribution, partitions=partitions)
    runtime.subscribe(Subscription(ATTRIBUTION_CHANGED, ATTRIBUTION, attribution, receipt=receipt))
    runtime.subscribe(Subscription(MEMBER_ID_CHANGED, MEMBERS, partial(apply_id_changes, partitions=partitions)))
    runtime.subscribe(Subscription(CLAIM_REJECTED, CLAIMS_REJECTED, store_rejects))
    retention = runtime.settings.reject_original_retention_days

    async def purge_originals(uow: UnitOfWork) -> int:
        await uow.conn.execute(
            f"UPDATE {SCHEMA}.rejects SET original = '', original_purged_at = now()"
            " WHERE original_purged_at IS NULL AND received_at < now() - make_interval(days => $1)",
            retention,
        )
        return 0

    runtime.work_loop("purge-originals", purge_originals, 1, idle_s=3600)

    app = runtime.app("acoflow claims_ingest")
    runtime.secure(app)

    @app.get("/rejects", tags=["rejects"])
    async def list_rejects(
        who: Viewer,
        status: Literal["open", "replayed", "all"] = "open",
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        after: Annotated[uuid.UUID | None, Query(description="the last event id of the previous page")] = None,
        include_original: Annotated[bool, Query(description="the original records (PHI): phi or admin role")] = False,
    ) -> list[dict[str, Any]]:
        """Rejected claim lines with their reasons, oldest first, a page at a time. The original records carry
        PHI: only the phi and admin roles may ask for them, every such read is audited, and they are purged
        after ACOFLOW_REJECT_ORIGINAL_RETENTION_DAYS."""
        if include_original and not allows(who.role, "phi"):
            raise HTTPException(403, detail=[{"loc": ["query", "include_original"], "msg": "needs the phi or admin role"}])
        originals = ", original, original_encoding" if include_original else ""
        query = (
            "SELECT event_id, received_at, source_topic, source, reasons, original_size, original_purged_at, status,"
            f" replayed_at{originals} FROM {SCHEMA}.rejects WHERE ($1 = 'all' OR status = $1)"
            " AND ($3::uuid IS NULL OR (received_at, event_id) >"
            f" (SELECT received_at, event_id FROM {SCHEMA}.rejects WHERE event_id = $3))"
            " ORDER BY received_at, event_id LIMIT $2"
        )
        async with runtime.pool.acquire() as conn, conn.transaction():
            rows = [dict(r) for r in await conn.fetch(query, status, limit, after)]
            if include_original and rows:
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.reject_reads (actor, event_ids) VALUES ($1, $2)",
                    who.actor,
                    [r["event_id"] for r in rows],
                )
        return rows

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
    serve(DECLARATION, build, MIGRATIONS)
