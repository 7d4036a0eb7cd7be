"""deploy/postgres-roles.sh on a real PostgreSQL: each service's role migrates and uses its own schema, and can
read nothing of another's."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest

from services.claims_ingest.app import MIGRATIONS as CLAIMS_MIGRATIONS
from services.settlement.app import MIGRATIONS as SETTLEMENT_MIGRATIONS
from shared.db import apply_migrations

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "postgres-roles.sh"
SERVICES = ("contracts", "claims_ingest", "settlement", "notifications")


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
async def test_each_service_role_owns_its_schema_and_nothing_else(admin_dsn: str) -> None:
    if not admin_dsn.startswith("postgresql://postgres@127.0.0.1"):
        pytest.skip("needs the local server with trust auth (psql runs the script as postgres)")
    name = f"acoflow_roles_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        for role in SERVICES:
            exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            if exists:
                pytest.skip(f"role {role} already exists on this server")
        await admin.execute(f"CREATE DATABASE {name}")
        passwords = {f"PG_{r.upper()}_PASSWORD": uuid.uuid4().hex for r in SERVICES}
        env = {**os.environ, **passwords, "POSTGRES_USER": "postgres", "POSTGRES_DB": name, "PGHOST": "127.0.0.1"}
        done = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)  # noqa: ASYNC221
        assert done.returncode == 0, done.stderr

        def dsn(role: str) -> str:
            return f"postgresql://{role}:{passwords[f'PG_{role.upper()}_PASSWORD']}@127.0.0.1:5432/{name}"

        claims = await asyncpg.connect(dsn("claims_ingest"))
        settlement = await asyncpg.connect(dsn("settlement"))
        try:
            assert await apply_migrations(claims, "claims_ingest", CLAIMS_MIGRATIONS)
            assert await apply_migrations(settlement, "settlement", SETTLEMENT_MIGRATIONS)
            await claims.execute("SELECT count(*) FROM claims_ingest.claim_lines")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await settlement.execute("SELECT count(*) FROM claims_ingest.claim_lines")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await claims.execute("CREATE TABLE public.intruder (x int)")
        finally:
            await claims.close()
            await settlement.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        for role in SERVICES:
            await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()
