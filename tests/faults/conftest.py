"""docs/faults.md is written once all the fault tests of the run have recorded what they saw."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import write_doc


@pytest.fixture(scope="session", autouse=True)
def faults_table() -> Iterator[None]:
    yield
    write_doc()
