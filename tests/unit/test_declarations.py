"""Each service wires exactly what its declaration states (services/*/app.py DECLARATION): the topics it consumes,
the loops it runs, the routes it serves. The grants, the AsyncAPI documents and the README's table come from the
declarations (tests/unit/test_kafka_acls.py, test_deploy.py), so what they say is what runs."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import pytest

from acoflow.kafka_acls import SERVICES
from shared.service import ServiceRuntime
from shared.settings import Settings

# What every service serves besides its own API (shared/service.py, FastAPI's documents, the API-key middleware).
COMMON = ("/health", "/metrics", "/unconfirmed", "/asyncapi.json", "/openapi.json", "/docs", "/redoc")


def paths(routes: list[Any], prefix: str = "") -> set[str]:
    """Every route's path; a router included in the app (FastAPI 0.16x keeps it whole) walked for its own."""
    out: set[str] = set()
    for route in routes:
        if hasattr(route, "path"):
            out.add(prefix + str(route.path))
        elif hasattr(route, "original_router"):
            out |= paths(route.original_router.routes, prefix + route.include_context.prefix)
    return out


def built(service: str, **changes: Any) -> tuple[ServiceRuntime, Any]:
    module = importlib.import_module(f"services.{service}.app")
    declaration = dataclasses.replace(module.DECLARATION, **changes)
    runtime = ServiceRuntime(declaration, module.MIGRATIONS, Settings())
    return runtime, module.build(runtime)


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_wires_exactly_what_it_declares(service: str) -> None:
    """The grants come from the declaration, and the runtime wires from it: building the service on a runtime
    that is never started subscribes to every declared topic and nothing else (settlement's notifications.v1
    included, which the grants written by hand left out), in groups its principal's prefix covers."""
    runtime, _ = built(service)
    runtime.check_wiring()
    groups = {group for group, _ in runtime.consumer_groups()}
    assert groups and all(g == service or g.startswith(service + ".") for g in groups), groups


def test_wiring_what_is_not_declared_is_refused() -> None:
    from services.settlement.app import DECLARATION

    with pytest.raises(ValueError, match=r"keys\.v1 is not in its declaration's consumes"):
        built("settlement", consumes=DECLARATION.consumes[:-1])
    runtime, _ = built("settlement", loops=(*DECLARATION.loops, "never-run"))
    with pytest.raises(RuntimeError, match=r"loops undeclared \[\], unwired \['never-run'\]"):
        runtime.check_wiring()


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_serves_its_declared_routes(service: str) -> None:
    runtime, app = built(service)
    own = {p for p in paths(app.routes) if not p.startswith(COMMON)}
    declared = runtime.declaration.serves
    assert all(p.startswith(declared) for p in own), sorted(p for p in own if not p.startswith(declared))
    assert all(any(p.startswith(prefix) for p in own) for prefix in declared), (declared, sorted(own))
