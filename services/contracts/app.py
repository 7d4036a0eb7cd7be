"""The contracts service: authenticated HTTP API over versioned contracts; publishes through its outbox."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.contracts.api import build_router
from services.contracts.auth import lookup, register_bootstrap
from services.contracts.keys_api import build_keys_router, publish_key
from services.contracts.repository import UnsettleableVersion, republish
from shared.auth import ApiKeyMiddleware, Principal, bootstrap_key_id, key_hash
from shared.confirmations import ATTRIBUTION_HOP
from shared.db import Conn
from shared.declaration import Declaration
from shared.service import ServiceRuntime, serve
from shared.topics import ATTRIBUTION, ATTRIBUTION_ACKS, CONTRACTS, DEADLETTER, KEYS, QUALITY

MIGRATIONS = Path(__file__).parent / "migrations"
DECLARATION = Declaration(
    "contracts",
    consumes=(ATTRIBUTION_ACKS,),
    produces=(CONTRACTS, ATTRIBUTION, QUALITY, KEYS, DEADLETTER),  # states, attribution, quality, keys, refusals
    loops=(f"resend-{ATTRIBUTION.name}", "republish"),
    serves=("/contracts", "/keys"),
)


def build(runtime: ServiceRuntime) -> FastAPI:
    bootstrap = runtime.settings.bootstrap_api_key.get_secret_value()
    if bootstrap:

        async def register(conn: Conn) -> None:
            async with conn.transaction():
                if await register_bootstrap(conn, bootstrap):
                    uow = runtime.units.on(conn)
                    publish_key(uow, bootstrap_key_id(bootstrap), "bootstrap", "admin", key_hash(bootstrap), revoked=False)
                    await uow.flush()

        runtime.on_start.append(register)
    runtime.confirm_sends(ATTRIBUTION_HOP)
    runtime.republishing(republish)
    app = runtime.app("acoflow contracts")

    async def find(key: str) -> Principal | None:
        async with runtime.pool.acquire() as conn:
            return await lookup(conn, key)

    # The keys' owner answers a revocation at once: no cache here (the other services learn it over keys.v1).
    app.add_middleware(ApiKeyMiddleware, lookup=find, cache_s=0.0)

    @app.exception_handler(UnsettleableVersion)
    async def unsettleable(_: Request, exc: UnsettleableVersion) -> JSONResponse:
        field, _sep, msg = str(exc).partition(": ")
        return JSONResponse({"detail": [{"loc": ["body", field], "msg": msg}]}, status_code=422)

    app.include_router(build_router(runtime))
    app.include_router(build_keys_router(runtime))
    return app


def main() -> None:
    serve(DECLARATION, build, MIGRATIONS)
