"""Webhook delivery holds no transaction while it posts: the delivery is leased in a short transaction, the
request goes out with nothing locked, and the outcome is stored in a transaction of its own; a lease left by
a process that died mid-post runs out and the delivery is attempted again. Real PostgreSQL, a real HTTP
receiver."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import httpx
import pytest

from acoflow.stack import free_port
from services.notifications.app import MIGRATIONS
from services.notifications.handlers import SCHEMA, deliver_due
from shared.db import apply_migrations, create_pool
from shared.settings import Settings
from shared.unit_of_work import UnitsOfWork

pytestmark = pytest.mark.integration


class Probe(BaseHTTPRequestHandler):
    """While a delivery is being posted, tries to lock its row: it must be free."""

    dsn: ClassVar[str] = ""
    locked_during_post: ClassVar[list[bool]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))

        async def try_lock() -> bool:
            conn = await asyncpg.connect(Probe.dsn)
            try:
                async with conn.transaction():
                    await conn.execute("SET LOCAL lock_timeout = '200ms'")
                    await conn.execute(f"SELECT 1 FROM {SCHEMA}.deliveries FOR UPDATE")
                return False
            except asyncpg.LockNotAvailableError:
                return True
            finally:
                await conn.close()

        Probe.locked_during_post.append(asyncio.run(try_lock()))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def probe() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


async def test_delivery_posts_with_nothing_locked_and_an_expired_lease_is_retried(database: str, probe: str) -> None:
    Probe.dsn, Probe.locked_during_post = database, []
    pool = await create_pool(database, 2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, SCHEMA, Path(MIGRATIONS))
            ids = [uuid.uuid4(), uuid.uuid4()]
            for n, delivery in enumerate(ids):
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.deliveries (id, alert_id, contract_id, rule, kind, url, body, leased_until)"
                    " VALUES ($1, $2, $3, 'r', 'raised', $4, '{}'::bytea, $5)",
                    delivery,
                    f"a{n}",
                    f"C{n}",
                    probe,
                    # the second was leased by a process that died mid-post: its lease ran out a minute ago
                    None if n == 0 else await conn.fetchval("SELECT now() - interval '1 minute'"),
                )
        settings = Settings(database_url=database)
        async with httpx.AsyncClient(timeout=5) as client:
            assert await deliver_due(UnitsOfWork(lambda: pool, SCHEMA), client, settings) == 2
        rows = await pool.fetch(f"SELECT status, attempts, leased_until FROM {SCHEMA}.deliveries ORDER BY alert_id")
        events = await pool.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox")
    finally:
        await pool.close()
    assert Probe.locked_during_post == [False, False]
    assert [(r["status"], r["attempts"], r["leased_until"]) for r in rows] == [("delivered", 1, None)] * 2
    assert events == 2  # one "delivered" event each
