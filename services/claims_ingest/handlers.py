"""claims_ingest's consumers: claim lines in, attribution changes in, spend events (and rejects) out."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from prometheus_client import Counter

from services.claims_ingest.domain.attribution import (
    Correction,
    Emitted,
    corrections,
    covering,
    service_month,
    spend_event_id,
)
from shared.db import Conn
from shared.envelope import Envelope, Reason, new_envelope
from shared.events import (
    CLAIM_REJECTED,
    SPEND_APPLIED,
    AttributionPeriod,
    ClaimLine,
    ClaimRejected,
    RejectReason,
    SpendDelta,
)
from shared.events import Attribution as AttributionEvent
from shared.kafka import Parsed, original_text
from shared.metrics import REGISTRY
from shared.topics import CLAIMS_REJECTED, SPEND, TopicSpec

SCHEMA = "claims_ingest"
PRODUCER = "claims_ingest"
MEMBER_LOCK_STRIPES = 256
Outgoing = list[tuple[TopicSpec, str, Envelope[Any]]]

DENIED = Counter("acoflow_claims_denied_total", "Denied claim lines excluded from spend", registry=REGISTRY)
UNATTRIBUTED = Counter("acoflow_claims_unattributed_total", "Claim lines kept with no contract (yet)", registry=REGISTRY)


def reject_claim(record: ConsumerRecord[Any, Any], reasons: list[Reason]) -> tuple[TopicSpec, str, Envelope[Any]]:
    text, encoding = original_text(record.value)
    payload = ClaimRejected(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reasons=tuple(RejectReason(**r.as_dict()) for r in reasons),
        original=text,
        original_encoding=encoding,
    )
    key = record.key.decode(errors="replace") if record.key else "unknown"
    return CLAIMS_REJECTED, key, new_envelope(CLAIM_REJECTED, payload, PRODUCER)


def _spend(contract_id: str, member_id: str, c: Correction, line: dict[str, Any], etype: str) -> Envelope[Any]:
    return new_envelope(
        SPEND_APPLIED,
        SpendDelta(
            contract_id=contract_id,
            member_id=member_id,
            line_key=c.line_key,
            enrollment_type=etype,
            claim_type=line["claim_type"],
            service_month=service_month(line["service_date"]),
            paid_date=line["paid_date"],
            amount=c.amount,
        ),
        PRODUCER,
        event_id=spend_event_id(c.line_key, contract_id, c.generation, c.sign),
    )


async def lock_members(conn: Conn, member_ids: set[str]) -> None:
    """Serialize work on the same members across the claims and attribution consumers: without it a claim
    stored while its member's attribution is being applied (each transaction blind to the other) would
    never be attributed. Locks are striped and taken in one order, so transactions cannot deadlock."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(7300, s) FROM"
        " (SELECT DISTINCT abs(hashtext(m)) % $2 AS s FROM unnest($1::text[]) AS m ORDER BY s) AS stripes",
        list(member_ids),
        MEMBER_LOCK_STRIPES,
    )


async def apply_claims(conn: Conn, batch: list[Parsed[ClaimLine]]) -> Outgoing:
    lines: dict[str, ClaimLine] = {}
    for p in batch:
        line = p.envelope.payload
        if line.denied:
            DENIED.inc()
            continue
        lines.setdefault(line.line_key, line)
    if not lines:
        return []
    values = list(lines.values())
    await lock_members(conn, {v.member_id for v in values})
    # A row re-delivered in a later file (new event id, same line key) is stored, and counted, once.
    inserted = await conn.fetch(
        f"INSERT INTO {SCHEMA}.claim_lines (line_key, member_id, payer, claim_type, service_date, paid_date, amount)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::date[],"
        " $7::numeric[]) ON CONFLICT DO NOTHING RETURNING line_key",
        [v.line_key for v in values],
        [v.member_id for v in values],
        [v.payer for v in values],
        [v.claim_type for v in values],
        [v.from_date for v in values],
        [v.paid_date for v in values],
        [v.signed_amount for v in values],
    )
    new = [lines[r["line_key"]] for r in inserted]
    if not new:
        return []
    rows = await conn.fetch(
        f"SELECT member_id, contract_id, payer, periods FROM {SCHEMA}.assignments WHERE member_id = ANY($1::text[])",
        list({v.member_id for v in new}),
    )
    by_member: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for r in rows:
        by_member[r["member_id"]].append(r)
    out: Outgoing = []
    emitted_rows: list[tuple[str, str, str, int, bool, Decimal]] = []
    for line in new:
        matched = False
        for a in by_member.get(line.member_id, ()):
            if a["payer"] != line.payer:
                continue
            period = covering((AttributionPeriod.model_validate(p) for p in a["periods"]), line.from_date)
            if period is None:
                continue
            matched = True
            c = Correction(line.line_key, 1, "+", line.signed_amount, period)
            info = {"claim_type": line.claim_type, "service_date": line.from_date, "paid_date": line.paid_date}
            out.append((SPEND, a["contract_id"], _spend(a["contract_id"], line.member_id, c, info, period.enrollment_type)))
            emitted_rows.append((line.line_key, a["contract_id"], line.member_id, 1, True, line.signed_amount))
        if not matched:
            UNATTRIBUTED.inc()
    if emitted_rows:
        await conn.executemany(
            f"INSERT INTO {SCHEMA}.emitted (line_key, contract_id, member_id, generation, active, amount)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            emitted_rows,
        )
    return out


async def apply_attribution(conn: Conn, batch: list[Parsed[AttributionEvent]]) -> Outgoing:
    out: Outgoing = []
    await lock_members(conn, {p.envelope.payload.member_id for p in batch})
    for p in batch:
        a = p.envelope.payload
        current = await conn.fetchval(
            f"SELECT contract_version FROM {SCHEMA}.assignments WHERE member_id = $1 AND contract_id = $2 FOR UPDATE",
            a.member_id,
            a.contract_id,
        )
        if current is not None and current >= a.contract_version:
            continue  # an older version arriving late changes nothing
        await conn.execute(
            f"INSERT INTO {SCHEMA}.assignments (member_id, contract_id, payer, contract_version, periods)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (member_id, contract_id) DO UPDATE"
            " SET payer = excluded.payer, contract_version = excluded.contract_version, periods = excluded.periods",
            a.member_id,
            a.contract_id,
            a.payer,
            a.contract_version,
            [period.model_dump(mode="json") for period in a.periods],
        )
        line_rows = await conn.fetch(
            f"SELECT line_key, payer, claim_type, service_date, paid_date, amount FROM {SCHEMA}.claim_lines WHERE member_id = $1",
            a.member_id,
        )
        emitted_rows = await conn.fetch(
            f"SELECT line_key, generation, active, amount FROM {SCHEMA}.emitted WHERE member_id = $1 AND contract_id = $2",
            a.member_id,
            a.contract_id,
        )
        info = {r["line_key"]: dict(r) for r in line_rows}
        emitted = {r["line_key"]: Emitted(r["generation"], r["active"], r["amount"]) for r in emitted_rows}
        same_payer = {k: (v["service_date"], v["amount"]) for k, v in info.items() if v["payer"] == a.payer}
        # Lines of another payer (the contract's payer changed) are covered by no period of this contract.
        other_payer = {k: (v["service_date"], v["amount"]) for k, v in info.items() if v["payer"] != a.payer}
        fixes = corrections(same_payer, emitted, a.periods) + corrections(other_payer, emitted, ())
        for c in fixes:
            line = info[c.line_key]
            etype = c.period.enrollment_type if c.period else (a.periods[0].enrollment_type if a.periods else "aged_nondual")
            out.append((SPEND, a.contract_id, _spend(a.contract_id, a.member_id, c, line, etype)))
            await conn.execute(
                f"INSERT INTO {SCHEMA}.emitted (line_key, contract_id, member_id, generation, active, amount)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (line_key, contract_id) DO UPDATE"
                " SET generation = excluded.generation, active = excluded.active, amount = excluded.amount",
                c.line_key,
                a.contract_id,
                a.member_id,
                c.generation,
                c.sign == "+",
                c.amount if c.sign == "+" else emitted[c.line_key].amount,
            )
    return out
