"""Running an apply step as a consumer would, on a connection whose transaction the test holds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from shared.db import Conn
from shared.unit_of_work import Outgoing, UnitOfWork


async def published(conn: Conn, apply: Callable[[UnitOfWork, Any], Awaitable[None]], batch: Any) -> Outgoing:
    """What `apply` published for `batch` (not written to the outbox: the test reads it)."""
    uow = UnitOfWork(conn, "test")
    await apply(uow, batch)
    return list(uow.events)
