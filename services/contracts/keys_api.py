"""API key management (admin only): create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import ConfigDict, Field

from services.contracts.auth import SCHEMA
from shared.auth import Principal, Role, key_hash, new_key, requires
from shared.envelope import new_envelope
from shared.events import API_KEY_CHANGED, ApiKeyChanged
from shared.http import Body, ExactJsonRoute
from shared.runtime_types import Pooled
from shared.text import Text
from shared.topics import KEYS
from shared.unit_of_work import UnitOfWork

Admin = Annotated[Principal, Depends(requires("admin"))]


def publish_key(uow: UnitOfWork, key_id: str, name: str, role: Role, hashed: str, *, revoked: bool) -> None:
    """Tell every service about a key change (in the unit of work's transaction)."""
    payload = ApiKeyChanged(key_id=key_id, name=name, role=role, key_hash=hashed, revoked=revoked)
    uow.publish(KEYS, key_id, new_envelope(API_KEY_CHANGED, payload, "contracts"))


class KeyIn(Body):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=100)
    role: Role


def build_keys_router(pooled: Pooled) -> APIRouter:
    router = APIRouter(prefix="/keys", tags=["keys"], route_class=ExactJsonRoute)

    @router.post("", status_code=201)
    async def create_key(body: KeyIn, who: Admin) -> dict[str, str]:
        key_id, key = new_key()
        async with pooled.units() as uow:
            await uow.conn.execute(
                f"INSERT INTO {SCHEMA}.api_keys (key_id, name, role, key_hash, created_by) VALUES ($1, $2, $3, $4, $5)",
                key_id,
                body.name,
                body.role,
                key_hash(key),
                who.actor,
            )
            publish_key(uow, key_id, body.name, body.role, key_hash(key), revoked=False)
        return {"key_id": key_id, "name": body.name, "role": body.role, "key": key}

    @router.get("")
    async def list_keys(_: Admin) -> list[dict[str, Any]]:
        async with pooled.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT key_id, name, role, created_by, created_at, last_used_at, revoked_at, revoked_by"
                f" FROM {SCHEMA}.api_keys ORDER BY created_at"
            )
        return [dict(r) for r in rows]

    @router.delete("/{key_id}")
    async def revoke_key(key_id: str, who: Admin) -> dict[str, str]:
        async with pooled.units() as uow:
            # The last active admin key stays: without one nobody could manage keys again (every service would
            # answer 401 to anything needing an admin).
            last = await uow.conn.fetchval(
                f"SELECT role = 'admin' AND (SELECT count(*) FROM {SCHEMA}.api_keys WHERE role = 'admin'"
                f" AND revoked_at IS NULL) <= 1 FROM {SCHEMA}.api_keys WHERE key_id = $1 AND revoked_at IS NULL FOR UPDATE",
                key_id,
            )
            if last:
                raise HTTPException(
                    409,
                    detail=[
                        {
                            "loc": ["path", "key_id"],
                            "msg": "the last active admin key cannot be revoked: create another admin key first",
                        }
                    ],
                )
            done = await uow.conn.fetchrow(
                f"UPDATE {SCHEMA}.api_keys SET revoked_at = now(), revoked_by = $2 WHERE key_id = $1 AND revoked_at IS NULL"
                " RETURNING key_id, name, role, key_hash",
                key_id,
                who.actor,
            )
            if done is not None:
                publish_key(uow, key_id, done["name"], done["role"], done["key_hash"], revoked=True)
        if done is None:
            raise HTTPException(404, detail=[{"loc": ["path", "key_id"], "msg": "no such active key"}])
        return {"key_id": key_id, "revoked_by": who.actor}

    return router
