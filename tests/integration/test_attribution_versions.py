"""Any sequence of contract versions (payer, roster, dates, enrollment types and counted claim types changing in
any combination) leaves claims_ingest's spend for the contract equal to the signed sum of the claims the latest
version attributes: the contracts domain's attribution changes applied by claims_ingest's consumers on
PostgreSQL, with claims arriving before, between and after the versions."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.claims_ingest.app import MIGRATIONS
from services.claims_ingest.handlers import SCHEMA, apply_attribution, apply_claims
from services.contracts.domain.roster import RosterMember, attribution_changes, periods_of, summarize
from shared.consumer import Parsed
from shared.db import apply_migrations, create_pool
from shared.envelope import Envelope, new_envelope
from shared.events import ATTRIBUTION_CHANGED, CLAIM_SUBMITTED, SPEND_BATCH, Attribution, ClaimLine, ContractState
from shared.terms import ClaimType, ContractTerms
from tests.units import published

pytestmark = pytest.mark.integration

MEMBERS = ("A", "B", "C", "D")
PAYERS = ("CMS", "BCBS")
TYPES: tuple[ClaimType, ...] = ("professional", "inpatient", "pharmacy")


@dataclass(frozen=True)
class Version:
    payer: str
    period_start_month: int
    claim_types: tuple[ClaimType, ...] | None
    roster: tuple[tuple[str, int, int, str], ...]  # member, first month, last month, enrollment type


versions = st.builds(
    Version,
    payer=st.sampled_from(PAYERS),
    period_start_month=st.sampled_from((1, 4)),
    claim_types=st.one_of(st.none(), st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True).map(tuple)),
    roster=st.lists(
        st.tuples(
            st.sampled_from(MEMBERS),
            st.integers(1, 12),
            st.integers(1, 12),
            st.sampled_from(("aged_nondual", "esrd")),
        ).filter(lambda m: m[1] <= m[2]),
        max_size=5,
        unique_by=lambda m: m[0],
    ).map(tuple),
)
claims = st.lists(
    st.tuples(
        st.sampled_from(MEMBERS),
        st.sampled_from(PAYERS),
        st.sampled_from(TYPES),
        st.integers(1, 12),
        st.decimals(min_value=Decimal("-50"), max_value=Decimal("900"), places=2),
        st.sampled_from(("original", "cancellation")),
    ),
    min_size=1,
    max_size=12,
)


def terms_of(v: Version) -> ContractTerms:
    return ContractTerms(
        program="COMMERCIAL",
        track="SHARED_SAVINGS",
        performance_year=2025,
        period_start=date(2025, v.period_start_month, 1),
        period_end=date(2025, 12, 31),
        benchmark_pmpm=Decimal(500),
        claim_types=v.claim_types,
    )


def members_of(v: Version, token: str) -> list[RosterMember]:
    return [
        RosterMember(
            member_id=f"{m}{token}",
            enrollment_type=etype,  # type: ignore[arg-type]
            start=date(2025, first, 1),
            end=date(2025, last, 28),
        )
        for m, first, last, etype in v.roster
    ]


def claim_event(n: int, token: str, claim: tuple[str, str, str, int, Decimal, str]) -> Parsed[ClaimLine]:
    member, payer, kind, month, amount, adjustment = claim
    served = date(2025, month, 15)
    line = ClaimLine.model_validate(
        {"source": f"prop{token}", "claim_id": f"K{n}", "line_number": 1, "member_id": f"{member}{token}",
         "payer": payer, "claim_type": kind, "adjustment_type": adjustment, "from_date": served, "thru_date": served,
         "paid_date": date(2025, 12, 31), "paid_amount": amount}
    )  # fmt: skip
    record: ConsumerRecord[Any, Any] = ConsumerRecord("claims.submitted.v1", 0, n, 0, 0, None, b"", None, 0, 0, [])
    return Parsed(record, new_envelope(CLAIM_SUBMITTED, line, "test"))


def attribution_event(event: Attribution) -> Parsed[Attribution]:
    record: ConsumerRecord[Any, Any] = ConsumerRecord("attribution.v1", 0, 0, 0, 0, None, b"", None, 0, 0, [])
    return Parsed(record, new_envelope(ATTRIBUTION_CHANGED, event, "test"))


def spend_of(outgoing: list[tuple[Any, str, Envelope[Any]]], contract_id: str) -> Decimal:
    total = Decimal(0)
    for _, _, envelope in outgoing:
        if envelope.event_type == SPEND_BATCH.event_type:
            total += sum((d.amount for d in envelope.payload.deltas if d.contract_id == contract_id), Decimal(0))
    return total


def expected(latest: Version, token: str, lines: list[Parsed[ClaimLine]]) -> Decimal:
    terms = terms_of(latest)
    periods = periods_of(members_of(latest, token), terms)
    total = Decimal(0)
    for p in lines:
        line = p.envelope.payload
        covered = any(x.start <= line.from_date <= x.end for x in periods.get(line.member_id, ()))
        if covered and line.payer == latest.payer and line.claim_type in terms.counted_claim_types:
            total += line.signed_amount
    return total


async def run(dsn: str, history: list[Version], claim_rows: list[tuple[str, str, str, int, Decimal, str]]) -> None:
    token = uuid.uuid4().hex[:8]
    contract_id = f"P{token}"
    lines = [claim_event(n, token, c) for n, c in enumerate(claim_rows)]
    cut = len(lines) // 2
    pool = await create_pool(dsn, 1)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, SCHEMA, Path(MIGRATIONS))
            async with conn.transaction():
                outgoing = await published(conn, apply_claims, lines[:cut])
            prev: ContractState | None = None
            before: dict[str, Any] = {}
            for number, v in enumerate(history, start=1):
                terms = terms_of(v)
                after = periods_of(members_of(v, token), terms)
                changes = attribution_changes(prev, before, after, v.payer, terms)
                events = [
                    attribution_event(
                        Attribution(
                            member_id=m,
                            contract_id=contract_id,
                            payer=v.payer,
                            contract_version=number,
                            periods=periods,
                            claim_types=tuple(sorted(terms.counted_claim_types)),
                        )
                    )
                    for m, periods in changes.items()
                ]
                if events:
                    async with conn.transaction():
                        outgoing += await published(conn, apply_attribution, events)
                prev = ContractState(
                    contract_id=contract_id,
                    version=number,
                    name="property",
                    payer=v.payer,
                    terms=terms,
                    roster=summarize(after),
                    changed_by="test",
                    changed_at=datetime.now(UTC),
                )
                before = after
            async with conn.transaction():
                outgoing += await published(conn, apply_claims, lines[cut:])
    finally:
        await pool.close()
    assert spend_of(outgoing, contract_id) == expected(history[-1], token, lines)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=st.lists(versions, min_size=1, max_size=5), claim_rows=claims)
def test_spend_equals_the_claims_the_latest_version_attributes(
    database: str, history: list[Version], claim_rows: list[tuple[str, str, str, int, Decimal, str]]
) -> None:
    asyncio.run(run(database, history, claim_rows))


def test_payer_and_roster_changed_together_removes_the_dropped_member() -> None:
    """The case a user hit: one version changes the payer and drops a member."""
    v1 = Version("CMS", 1, None, (("A", 1, 12, "aged_nondual"), ("B", 1, 12, "aged_nondual")))
    v2 = Version("BCBS", 1, None, (("A", 1, 12, "aged_nondual"),))
    terms1, terms2 = terms_of(v1), terms_of(v2)
    before, after = periods_of(members_of(v1, ""), terms1), periods_of(members_of(v2, ""), terms2)
    prev = ContractState(
        contract_id="C",
        version=1,
        name="c",
        payer="CMS",
        terms=terms1,
        roster=summarize(before),
        changed_by="t",
        changed_at=datetime.now(UTC),
    )
    changes = attribution_changes(prev, before, after, "BCBS", terms2)
    assert changes["B"] == () and changes["A"] == after["A"]
