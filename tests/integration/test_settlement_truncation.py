"""Truncation in the running position, on a real PostgreSQL: each member's spend to date is capped at the
annual threshold prorated to the months elapsed."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from services.settlement.app import MIGRATIONS
from services.settlement.repository import _snapshots, apply_spend
from shared.db import apply_migrations, create_pool
from tests.terms import mssp_terms, spend_deltas

pytestmark = pytest.mark.integration


async def test_member_totals_are_capped_at_the_prorated_threshold(database: str) -> None:
    terms = mssp_terms(truncation_threshold={"aged_nondual": D("100000")})
    pool = await create_pool(database, 2)  # with the service's jsonb codec
    conn = await pool.acquire()
    try:
        await apply_migrations(conn, "settlement", MIGRATIONS)
        spend = [("T", "M1", "10000"), ("T", "M2", "40000"), ("T", "M3", "20000"), ("U", "M1", "10000"), ("U", "M2", "40000")]
        await apply_spend(conn, spend_deltas(spend))
        snaps = await _snapshots(conn, {"T": terms, "U": mssp_terms()})  # U has no thresholds
        snap = snaps["T"]
    finally:
        await pool.release(conn)
        await pool.close()
    # March: 3/12 of the year, so the 100,000 annual threshold caps spend to date at 25,000 (M2 is truncated).
    assert snap.total == D("70000") and snap.truncated_total == D("55000")
    assert snaps["U"].total == snaps["U"].truncated_total == D("50000")
