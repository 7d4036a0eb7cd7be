"""Truncation in the running position, on a real PostgreSQL: each member's spend to date is capped at the
annual threshold prorated to the months elapsed."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from services.settlement.app import MIGRATIONS
from services.settlement.repository import _snapshots, apply_spend
from shared.db import apply_migrations, create_pool
from shared.events import SpendDelta
from tests.terms import mssp_terms

pytestmark = pytest.mark.integration


def _delta(contract: str, member: str, amount: str, n: int) -> SpendDelta:
    return SpendDelta(
        contract_id=contract,
        member_id=member,
        line_key=f"L{n}",
        enrollment_type="aged_nondual",
        claim_type="professional",
        service_month=date(2025, 3, 1),
        paid_date=date(2025, 3, 15),
        amount=D(amount),
    )


async def test_member_totals_are_capped_at_the_prorated_threshold(database: str) -> None:
    terms = mssp_terms(truncation_threshold={"aged_nondual": D("100000")})
    pool = await create_pool(database, 2)  # with the service's jsonb codec
    conn = await pool.acquire()
    try:
        await apply_migrations(conn, "settlement", MIGRATIONS)
        spend = [("T", "M1", "10000"), ("T", "M2", "40000"), ("T", "M3", "20000"), ("U", "M1", "10000"), ("U", "M2", "40000")]
        await apply_spend(conn, [_delta(c, m, a, n) for n, (c, m, a) in enumerate(spend)])
        snaps = await _snapshots(conn, {"T": terms, "U": mssp_terms()})  # U has no thresholds
        snap = snaps["T"]
    finally:
        await pool.release(conn)
        await pool.close()
    # March: 3/12 of the year, so the 100,000 annual threshold caps spend to date at 25,000 (M2 is truncated).
    assert snap.total == D("70000") and snap.truncated_total == D("55000")
    assert snaps["U"].total == snaps["U"].truncated_total == D("50000")
