"""The claims_ingest service: validates and attributes claim lines, emits spend events and rejects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.claims_ingest.handlers import apply_attribution, apply_claims, reject_claim
from shared.events import ATTRIBUTION_CHANGED, CLAIM_SUBMITTED
from shared.kafka import batch_options
from shared.service import ServiceRuntime, serve
from shared.topics import ATTRIBUTION, CLAIMS_SUBMITTED

MIGRATIONS = Path(__file__).parent / "migrations"
GROUP = "claims_ingest"


def build(runtime: ServiceRuntime) -> FastAPI:
    claims = runtime.consumer(CLAIM_SUBMITTED, CLAIMS_SUBMITTED, apply_claims, reject=reject_claim)
    attribution = runtime.consumer(ATTRIBUTION_CHANGED, ATTRIBUTION, apply_attribution)

    @runtime.broker.subscriber(CLAIMS_SUBMITTED.name, **batch_options(runtime.settings, GROUP))
    async def on_claims(records: list[Any]) -> None:
        await claims.handle(records)

    @runtime.broker.subscriber(ATTRIBUTION.name, **batch_options(runtime.settings, GROUP + ".attribution"))
    async def on_attribution(records: list[Any]) -> None:
        await attribution.handle(records)

    return runtime.app("acoflow claims_ingest")


def main() -> None:
    serve("claims_ingest", build, MIGRATIONS)
