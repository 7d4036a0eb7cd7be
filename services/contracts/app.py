"""The contracts service: HTTP API over versioned contracts; publishes through its outbox."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.contracts.api import build_router
from shared.service import ServiceRuntime, serve

MIGRATIONS = Path(__file__).parent / "migrations"


def build(runtime: ServiceRuntime) -> FastAPI:
    app = runtime.app("acoflow contracts")
    app.include_router(build_router(runtime))
    return app


def main() -> None:
    serve("contracts", build, MIGRATIONS)
