"""Each service's HTTP API against its own OpenAPI document, property-based (schemathesis, bounded examples),
on the running stack: no answer is a 500, every answer's status and body are the ones the document declares,
and data the document refuses is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from acoflow.stack import Stack, private_settings

pytestmark = pytest.mark.e2e
SERVICES = ("contracts", "claims_ingest", "settlement", "notifications")
EXAMPLES = 30  # per operation: enough to find the classes of bug seen (NUL bytes, 0 as a date, bounds), in bounded time
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _exercise(base: str, key: str) -> list[str]:
    document = httpx.get(base + "/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "DELETE":
            continue  # revoking keys at random would revoke the one the test runs with
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
            # The same examples every run: a failure is the code's, reproducible, never the draw's.
            derandomize=True,
        )
        def run(case: Any) -> None:
            case.call_and_validate(base_url=base, headers=headers, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # each operation's failures are reported; the others still run
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    return failures


def test_every_service_answers_as_its_openapi_document_says(tmp_path: Path, database: str) -> None:
    stack_settings = private_settings(tmp_path / "state", database_url=database)
    stack = Stack(stack_settings, stack_settings.state_dir)
    stack.start()
    try:
        failures = [f for name in SERVICES for f in _exercise(stack.url(name), stack.api_key)]
    finally:
        stack.stop()
    assert not failures, "\n\n".join(failures)
