"""Authentication for the contracts API: every request but /health and /metrics carries a key
(`Authorization: Bearer <key>` or `X-API-Key: <key>`); routes then ask for a role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import JSONResponse, Response

from services.contracts.domain.keys import Role, allows, key_hash
from shared.db import Conn
from shared.runtime_types import Pooled

SCHEMA = "contracts"
PUBLIC = frozenset({"/health", "/metrics"})


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """What the audit log records: the key's name and id (never the key)."""
        return f"{self.name} (key {self.key_id})"


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


async def lookup(conn: Conn, key: str) -> Principal | None:
    row = await conn.fetchrow(
        f"UPDATE {SCHEMA}.api_keys SET last_used_at = now() WHERE key_hash = $1 AND revoked_at IS NULL"
        " RETURNING key_id, name, role",
        key_hash(key),
    )
    return None if row is None else Principal(row["key_id"], row["name"], row["role"])


def _unauthorized(message: str) -> Response:
    return JSONResponse(
        {"detail": [{"loc": ["header", "authorization"], "msg": message}]},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


class ApiKeyMiddleware(BaseHTTPMiddleware):
    """Refuses anything without a valid key before routing, so no route (the docs included) can be missed."""

    def __init__(self, app: Any, pooled: Pooled) -> None:
        super().__init__(app)
        self.pooled = pooled

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path in PUBLIC:
            return await call_next(request)
        key = presented_key(request)
        if key is None:
            return _unauthorized("an API key is required: Authorization: Bearer <key> or X-API-Key: <key>")
        async with self.pooled.pool.acquire() as conn:
            principal = await lookup(conn, key)
        if principal is None:
            return _unauthorized("unknown or revoked API key")
        request.state.principal = principal
        return await call_next(request)


def requires(role: Role) -> Any:
    """A FastAPI dependency: the caller's principal, when its role allows `role` (else 403)."""

    async def dependency(request: Request) -> Principal:
        principal: Principal = request.state.principal
        if not allows(principal.role, role):
            raise HTTPException(403, detail=[{"loc": ["header", "authorization"], "msg": f"needs the {role} role"}])
        return principal

    return dependency


async def register_bootstrap(conn: Conn, key: str) -> None:
    """The install's first admin key (from settings), registered by hash; idempotent across restarts."""
    await conn.execute(
        f"INSERT INTO {SCHEMA}.api_keys (key_id, name, role, key_hash, created_by) VALUES ($1, 'bootstrap', 'admin', $2,"
        " 'settings') ON CONFLICT DO NOTHING",
        "boot" + key_hash(key)[:8],
        key_hash(key),
    )
