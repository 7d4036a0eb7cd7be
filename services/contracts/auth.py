"""The contracts service's side of API keys: it owns them (shared/auth.py has the rest)."""

from __future__ import annotations

from shared.auth import Principal, bootstrap_key_id, key_hash
from shared.db import Conn

SCHEMA = "contracts"


async def lookup(conn: Conn, key: str) -> Principal | None:
    row = await conn.fetchrow(
        f"UPDATE {SCHEMA}.api_keys SET last_used_at = now() WHERE key_hash = $1 AND revoked_at IS NULL"
        " RETURNING key_id, name, role",
        key_hash(key),
    )
    return None if row is None else Principal(row["key_id"], row["name"], row["role"])


async def register_bootstrap(conn: Conn, key: str) -> bool:
    """The install's first admin key (from settings), registered by hash; idempotent across restarts.
    True when it was new (so its key event must be published)."""
    row = await conn.fetchrow(
        f"INSERT INTO {SCHEMA}.api_keys (key_id, name, role, key_hash, created_by) VALUES ($1, 'bootstrap', 'admin', $2,"
        " 'settings') ON CONFLICT DO NOTHING RETURNING key_id",
        bootstrap_key_id(key),
        key_hash(key),
    )
    return row is not None
