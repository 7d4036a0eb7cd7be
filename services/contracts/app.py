"""The contracts service: authenticated HTTP API over versioned contracts; publishes through its outbox."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.contracts.api import build_router
from services.contracts.auth import ApiKeyMiddleware, register_bootstrap
from services.contracts.keys_api import build_keys_router
from shared.db import Conn
from shared.service import ServiceRuntime, serve

MIGRATIONS = Path(__file__).parent / "migrations"


def build(runtime: ServiceRuntime) -> FastAPI:
    bootstrap = runtime.settings.bootstrap_api_key.get_secret_value()
    if bootstrap:

        async def register(conn: Conn) -> None:
            await register_bootstrap(conn, bootstrap)

        runtime.on_start.append(register)
    app = runtime.app("acoflow contracts")
    app.add_middleware(ApiKeyMiddleware, pooled=runtime)
    app.include_router(build_router(runtime))
    app.include_router(build_keys_router(runtime))
    return app


def main() -> None:
    serve("contracts", build, MIGRATIONS)
