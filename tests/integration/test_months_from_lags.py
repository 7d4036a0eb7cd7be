"""Month totals from the paid triangle, on a real PostgreSQL: a position's spend by service month is the sum of
each month's lags, and an install upgraded from before lags were kept (migration 006) loses none of the spend
it applied then."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from services.settlement import repository
from services.settlement.app import MIGRATIONS
from shared.db import apply_migrations, create_pool
from shared.events import SpendDelta
from tests.terms import contract_state
from tests.upgrades import migrations_before

pytestmark = pytest.mark.integration


def _delta(n: int, month: int, paid: date, amount: str) -> SpendDelta:
    return SpendDelta(
        contract_id="P1", member_id=f"M{n % 3}", line_key=f"k{n}", enrollment_type="aged_nondual",
        claim_type="professional", service_month=date(2025, month, 1), paid_date=paid, amount=D(amount),
    )  # fmt: skip


async def test_months_are_the_sum_of_their_lags_and_keep_spend_from_before_lags(database: str, tmp_path: Path) -> None:
    before_006 = migrations_before(MIGRATIONS, "006", tmp_path / "migrations")
    pool = await create_pool(database, 2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "settlement", before_006)
            # An install as it stood before migration 002: January and February spend in month_spend only.
            await conn.execute(
                "INSERT INTO settlement.month_spend (contract_id, service_month, amount, lines) VALUES"
                " ('P1', '2025-01-01', 1000.50, 3), ('P1', '2025-02-01', 200, 1)"
            )
            # Then 002 to 005's code: February and March spend in both tables, with its lags.
            await conn.execute(
                "UPDATE settlement.month_spend SET amount = amount + 30.25 WHERE service_month = '2025-02-01';"
                " INSERT INTO settlement.month_spend VALUES ('P1', '2025-03-01', 70, 2);"
                " INSERT INTO settlement.lag_spend VALUES ('P1', '2025-02-01', 1, 30.25), ('P1', '2025-03-01', 0, 40),"
                " ('P1', '2025-03-01', 1, 30)"
            )
            assert (await apply_migrations(conn, "settlement", MIGRATIONS))[0] == "006_months_from_lags.sql"
            kept = await conn.fetch("SELECT service_month, amount FROM settlement.spend_before_lags ORDER BY 1")
            assert [(r["service_month"], r["amount"]) for r in kept] == [
                (date(2025, 1, 1), D("1000.500000")),
                (date(2025, 2, 1), D("200.000000")),
            ]

            # Spend from now on: March again at a new lag, April at two lags, and a reversal netting one out.
            await repository.store_contract(conn, contract_state("P1"))
            await repository.apply_spend(
                conn,
                [
                    _delta(1, 3, date(2025, 5, 2), "5.005"),
                    _delta(2, 4, date(2025, 4, 30), "100"),
                    _delta(3, 4, date(2025, 5, 1), "12.5"),
                    _delta(4, 4, date(2025, 5, 3), "-12.5"),
                ],
            )
            [(_, _, event)] = await repository.recompute(conn, {"P1"})
        p = event.payload
        assert p.paid_by_service_month == {
            "2025-01": D("1000.500000"),
            "2025-02": D("230.250000"),
            "2025-03": D("75.005000"),
            "2025-04": D("100.000000"),
        }
        assert list(p.paid_by_service_month) == ["2025-01", "2025-02", "2025-03", "2025-04"]
        assert p.paid_to_date == D("1405.755")
        assert p.lines_applied == 4
    finally:
        await pool.close()
