"""API keys for every service's HTTP API: every request but /health and /metrics carries a key
(`Authorization: Bearer <key>` or `X-API-Key: <key>`), and routes ask for a role.

The contracts service owns the keys (it creates and revokes them, admin only) and publishes each change on
keys.v1: the key's id, name, role and SHA-256, never the key. The other services keep a replica of that
topic in their own schema (api_key_replica), so one key works everywhere and a revocation reaches all."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import HTTPException, Request
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import JSONResponse, Response

from shared.db import Conn
from shared.http import PUBLIC_PATHS

Role = Literal["viewer", "editor", "admin", "phi"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")
# "phi" reads what viewers read plus the originals of rejected records (PHI), which no other role but admin does.
PREFIX = "acf_"
PUBLIC = PUBLIC_PATHS


def new_key() -> tuple[str, str]:
    """(key id, key): the id is public (it names the key in lists and audit records), the key is secret."""
    key_id = secrets.token_hex(4)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_hash(key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough: there is nothing to guess.
    return hashlib.sha256(key.encode()).hexdigest()


def bootstrap_key_id(key: str) -> str:
    return "boot" + key_hash(key)[:8]


def allows(role: Role, required: Role) -> bool:
    """Roles nest: an admin may do what an editor may, an editor what a viewer may; the phi role may do what a
    viewer may and read PHI, which admins may too."""
    if required == "phi":
        return role in ("phi", "admin")
    if role == "phi":
        return required == "viewer"
    return ROLES.index(role) >= ROLES.index(required)


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """What audit records name: the key's name and id (never the key)."""
        return f"{self.name} (key {self.key_id})"


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


Lookup = Callable[[str], Awaitable[Principal | None]]


def _unauthorized(message: str) -> Response:
    return JSONResponse(
        {"detail": [{"loc": ["header", "authorization"], "msg": message}]},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


# A key's lookup is remembered this long (a revocation takes effect within it); a client that presents this many
# unknown keys within FAILURE_WINDOW_S is answered 429 until the window has passed.
AUTH_CACHE_S = 5.0
FAILURE_LIMIT = 100
FAILURE_WINDOW_S = 60.0


class ApiKeyMiddleware(BaseHTTPMiddleware):
    """Refuses anything without a valid key before routing, so no route (the docs included) can be missed.
    Lookups are cached for AUTH_CACHE_S, so a request costs the database at most one lookup per key that often;
    repeated failures from one client are slowed down (429)."""

    def __init__(self, app: Any, lookup: Lookup, cache_s: float = AUTH_CACHE_S, own_auth: tuple[str, ...] = ()) -> None:
        super().__init__(app)
        self.lookup = lookup
        # Path prefixes that authenticate on their own (the console: a session cookie from a key, services/
        # settlement/console.py).
        self._own_auth = own_auth
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._failures: dict[str, list[float]] = {}

    async def _principal(self, key: str) -> Principal | None:
        now = time.monotonic()
        digest = key_hash(key)
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self._cache_s:
            return cached[1]
        if len(self._cache) > 10_000:
            self._cache.clear()
        principal = await self.lookup(key)
        self._cache[digest] = (now, principal)
        return principal

    def _throttled(self, client: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, []) if now - t < FAILURE_WINDOW_S]
        self._failures[client] = recent
        return len(recent) >= FAILURE_LIMIT

    def _failed(self, client: str) -> None:
        if len(self._failures) > 10_000:
            self._failures.clear()
        self._failures.setdefault(client, []).append(time.monotonic())

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path in PUBLIC or (self._own_auth and request.url.path.startswith(self._own_auth)):
            return await call_next(request)
        client = request.client.host if request.client else "unknown"
        if self._throttled(client):
            return JSONResponse(
                {"detail": [{"loc": ["header", "authorization"], "msg": "too many failed attempts: try again later"}]},
                status_code=429,
                headers={"Retry-After": str(int(FAILURE_WINDOW_S))},
            )
        key = presented_key(request)
        if key is None:
            self._failed(client)
            return _unauthorized("an API key is required: Authorization: Bearer <key> or X-API-Key: <key>")
        principal = await self._principal(key)
        if principal is None:
            self._failed(client)
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


async def replica_lookup(conn: Conn, schema: str, key: str) -> Principal | None:
    row = await conn.fetchrow(
        f"SELECT key_id, name, role FROM {schema}.api_key_replica WHERE key_hash = $1 AND NOT revoked", key_hash(key)
    )
    return None if row is None else Principal(row["key_id"], row["name"], row["role"])


async def replicate(conn: Conn, schema: str, key_id: str, name: str, role: str, hashed: str, revoked: bool) -> None:
    """Apply one key change to a service's replica; a revocation is final."""
    await conn.execute(
        f"INSERT INTO {schema}.api_key_replica (key_id, name, role, key_hash, revoked) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (key_id) DO UPDATE SET name = excluded.name, role = excluded.role, key_hash = excluded.key_hash,"
        f" revoked = {schema}.api_key_replica.revoked OR excluded.revoked",
        key_id,
        name,
        role,
        hashed,
        revoked,
    )
