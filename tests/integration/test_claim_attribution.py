"""The claim consumer's attribution on PostgreSQL: each line's spend goes to the contract and enrollment type of
the period covering its service date, under the member's newest id, once per final-action group, and every
spend delta it builds is one settlement accepts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from services.claims_ingest.app import MIGRATIONS
from services.claims_ingest.handlers import SCHEMA, apply_claims
from shared.consumer import Parsed
from shared.db import apply_migrations, create_pool
from shared.envelope import new_envelope, parse_event
from shared.events import CLAIM_SUBMITTED, SPEND_BATCH, ClaimLine, SpendDelta
from tests.units import published

pytestmark = pytest.mark.integration

HALVES = [
    {"start": "2025-01-01", "end": "2025-06-30", "enrollment_type": "aged_nondual"},
    {"start": "2025-07-01", "end": "2025-12-31", "enrollment_type": "esrd"},
]


def parsed(n: int, member: str, served: str, amount: str, **extra: Any) -> Parsed[ClaimLine]:
    line = ClaimLine.model_validate(
        {"source": "test", "claim_id": f"K{n}", "line_number": 1, "member_id": member, "payer": "CMS",
         "claim_type": "professional", "from_date": served, "thru_date": served, "paid_date": "2025-11-20",
         "paid_amount": amount, **extra}
    )  # fmt: skip
    record: ConsumerRecord[Any, Any] = ConsumerRecord("claims.submitted.v1", 0, n, 0, 0, None, b"", None, 0, 0, [])
    return Parsed(record, new_envelope(CLAIM_SUBMITTED, line, "test"))


async def test_spend_follows_periods_renames_and_final_action(database: str) -> None:
    pool = await create_pool(database, 2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, SCHEMA, Path(MIGRATIONS))
            await conn.executemany(
                f"INSERT INTO {SCHEMA}.assignments (member_id, contract_id, payer, contract_version, periods)"
                " VALUES ($1, $2, 'CMS', 1, $3)",
                [("M1", "C1", HALVES), ("M2", "C1", HALVES[:1]), ("M3", "C2", HALVES)],
            )
            await conn.execute(f"INSERT INTO {SCHEMA}.member_xref (payer, previous_id, current_id) VALUES ('CMS', 'OLD2', 'M2')")
            batch = [
                parsed(1, "M1", "2025-03-10", "100.10"),
                parsed(2, "M1", "2025-08-05", "50.05"),
                parsed(3, "M3", "2025-09-01", "7.00"),
                parsed(4, "OLD2", "2025-04-01", "30.00"),
                parsed(5, "OLD2", "2025-09-01", "11.00"),  # no period of M2 covers September
                parsed(6, "M1", "2025-05-02", "70.00", version_group="G", effective_date="2025-05-02"),
                parsed(7, "M1", "2025-05-02", "80.00", version_group="G", effective_date="2025-05-20"),
                parsed(8, "NOBODY", "2025-05-02", "5.00"),
            ]
            async with conn.transaction():
                outgoing = await published(conn, apply_claims, batch)
            async with conn.transaction():
                again = await published(conn, apply_claims, batch)  # redelivered: every line is already stored
            emitted = await conn.fetch(f"SELECT line_key, contract_id, member_id FROM {SCHEMA}.emitted ORDER BY line_key")
    finally:
        await pool.close()

    deltas: list[SpendDelta] = []
    for _, _, envelope in outgoing:
        deltas += parse_event(SPEND_BATCH, envelope.to_bytes()).payload.deltas  # what settlement would read
    got = sorted(
        (d.line_key.split("|")[1], d.contract_id, d.member_id, d.enrollment_type, d.service_month, d.amount) for d in deltas
    )
    assert got == [
        ("K1", "C1", "M1", "aged_nondual", date(2025, 3, 1), Decimal("100.10")),
        ("K2", "C1", "M1", "esrd", date(2025, 8, 1), Decimal("50.05")),
        ("K3", "C2", "M3", "esrd", date(2025, 9, 1), Decimal("7.00")),
        ("K4", "C1", "M2", "aged_nondual", date(2025, 4, 1), Decimal("30.00")),
        ("K7", "C1", "M1", "aged_nondual", date(2025, 5, 1), Decimal("80.00")),
    ]
    assert again == []
    assert [(r["line_key"].split("|")[1], r["contract_id"], r["member_id"]) for r in emitted] == [
        ("K1", "C1", "M1"), ("K2", "C1", "M1"), ("K3", "C2", "M3"), ("K4", "C1", "M2"), ("K7", "C1", "M1")
    ]  # fmt: skip
