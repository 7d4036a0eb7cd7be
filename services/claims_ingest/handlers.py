"""claims_ingest's consumers: claim lines in, attribution changes in, spend events (and rejects) out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from prometheus_client import Counter
from pydantic import TypeAdapter

from services.claims_ingest.domain.attribution import (
    Correction,
    Emitted,
    batch_event_id,
    corrections,
    service_month,
    spend_identity,
)
from services.claims_ingest.domain.claims import (
    Assignment,
    Version,
    admissible,
    attribute,
    content,
    differing_field,
    losers,
)
from shared.broker import partition_of
from shared.consumer import Parsed, refusal, rejection_id
from shared.db import Conn
from shared.envelope import Envelope, Reason, new_envelope
from shared.events import (
    CLAIM_REJECTED,
    MAX_SPEND_BATCH,
    SPEND_BATCH,
    AttributionPeriod,
    ClaimLine,
    ClaimRejected,
    MemberIdChanged,
    SpendBatch,
    SpendDelta,
)
from shared.events import Attribution as AttributionEvent
from shared.expenditure import counts, line_spend
from shared.metrics import EVENTS_DUPLICATE, EVENTS_REJECTED, REGISTRY
from shared.terms import EnrollmentType
from shared.topics import CLAIMS_REJECTED, CLAIMS_SUBMITTED, SPEND_BATCHES, TopicSpec
from shared.unit_of_work import Outgoing, UnitOfWork

SCHEMA = "claims_ingest"
PRODUCER = "claims_ingest"
MEMBER_LOCK_STRIPES = 256
# Spend produced in a transaction, each delta with its identity (line, contract, generation, sign).
Deltas = list[tuple[str, SpendDelta]]

log = structlog.get_logger()

DENIED = Counter("acoflow_claims_denied_total", "Denied claim lines excluded from spend", registry=REGISTRY)
UNATTRIBUTED = Counter("acoflow_claims_unattributed_total", "Claim lines kept with no contract (yet)", registry=REGISTRY)


def reject_claim(record: ConsumerRecord[Any, Any], reasons: list[Reason]) -> tuple[TopicSpec, str, Envelope[Any]]:
    key, fields = refusal(record, reasons)
    payload = ClaimRejected(**fields)
    return CLAIMS_REJECTED, key, new_envelope(CLAIM_REJECTED, payload, PRODUCER, event_id=rejection_id(record))


def _spend(
    contract_id: str, member_id: str, c: Correction, line: dict[str, Any], etype: EnrollmentType
) -> tuple[str, SpendDelta]:
    # Built without validation: every value comes from a validated claim line, assignment or stored row, and
    # settlement validates the batch again on receipt.
    delta = SpendDelta.model_construct(
        contract_id=contract_id,
        member_id=member_id,
        line_key=c.line_key,
        enrollment_type=etype,
        claim_type=line["claim_type"],
        service_month=service_month(line["service_date"]),
        paid_date=line["paid_date"],
        amount=c.amount,
    )
    return spend_identity(c.line_key, contract_id, c.generation, c.sign), delta


def spend_batches(
    deltas: Deltas, partitions: int, correlation: str | None = None, by_line: Mapping[str, str] | None = None
) -> Outgoing:
    """The transaction's spend as spend.v2 batches, one per partition of the topic: a batch holds only deltas
    of contracts whose id routes to one partition, and is keyed by one of them, so every delta of a contract
    is on its contract's partition, in order, and a consumer reading one partition sees all of the contracts
    it holds. (One message per contract would be as many messages as lines when a transaction spans many
    contracts, which slowed a bulk load several times over: docs/benchmarks.md.) A batch carries the correlation id of
    the events its deltas came from (`by_line`: per line key; else `correlation`). A batch's id derives from
    its deltas' identities, so the same spend is the same event wherever it is re-sent from."""
    grouped: dict[tuple[int, str | None], Deltas] = defaultdict(list)
    for identity, delta in deltas:
        origin = by_line.get(delta.line_key, correlation) if by_line else correlation
        grouped[(partition_of(delta.contract_id, partitions), origin)].append((identity, delta))
    out: Outgoing = []
    for (_, correlation_id), own in grouped.items():
        contract_id = own[0][1].contract_id
        for i in range(0, len(own), MAX_SPEND_BATCH):
            chunk = own[i : i + MAX_SPEND_BATCH]
            event_id = batch_event_id(identity for identity, _ in chunk)
            batch = SpendBatch(deltas=tuple(d for _, d in chunk))
            envelope = new_envelope(SPEND_BATCH, batch, PRODUCER, event_id=event_id, correlation_id=correlation_id)
            out.append((SPEND_BATCHES, contract_id, envelope))
    return out


_PERIODS = TypeAdapter(tuple[AttributionPeriod, ...])


@lru_cache(maxsize=64)
def _claim_types(types: tuple[str, ...]) -> frozenset[str]:
    return frozenset(types)


@lru_cache(maxsize=4096)
def _periods(text: str) -> tuple[AttributionPeriod, ...]:
    """An assignment's periods from their JSON text; the members of a roster mostly share the same periods, so
    each distinct text is parsed once rather than once per member per batch."""
    return _PERIODS.validate_json(text)


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


async def current_ids(conn: Conn, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(payer, member id) -> the newest id, for the retired ids among `keys`."""
    if not keys:
        return {}
    rows = await conn.fetch(
        f"SELECT x.payer, x.previous_id, x.current_id FROM {SCHEMA}.member_xref x"
        " JOIN unnest($1::text[], $2::text[]) AS k(payer, member_id) ON x.payer = k.payer AND x.previous_id = k.member_id",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["payer"], r["previous_id"]): r["current_id"] for r in rows}


async def _store(conn: Conn, lines: dict[str, ClaimLine]) -> tuple[dict[str, ClaimLine], dict[str, str]]:
    """Insert lines (by line_key) not seen before. Returns those, and the lines whose key was already stored with
    other content, with the field that differs (a row re-delivered in a later file is stored, and counted, once)."""
    values = list(lines.values())
    inserted = await conn.fetch(
        f"INSERT INTO {SCHEMA}.claim_lines (line_key, member_id, payer, claim_type, service_date, paid_date, amount,"
        " version_group, version_rank)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::date[],"
        " $7::numeric[], $8::text[], $9::text[]) ON CONFLICT DO NOTHING RETURNING line_key",
        list(lines),
        [v.member_id for v in values],
        [v.payer for v in values],
        [v.claim_type for v in values],
        [v.from_date for v in values],
        [v.paid_date for v in values],
        [line_spend(v) for v in values],
        [v.version_group for v in values],
        [v.version_rank if v.version_group else None for v in values],
    )
    keys = {r["line_key"] for r in inserted}
    known = [k for k in lines if k not in keys]
    conflicts: dict[str, str] = {}
    if known:
        for r in await conn.fetch(
            f"SELECT line_key, payer, claim_type, service_date, amount FROM {SCHEMA}.claim_lines"
            " WHERE line_key = ANY($1::text[])",
            known,
        ):
            stored = (r["payer"], r["claim_type"], r["service_date"], r["amount"])
            if stored != content(lines[r["line_key"]]):
                conflicts[r["line_key"]] = differing_field(stored, content(lines[r["line_key"]]))
    return {k: v for k, v in lines.items() if k in keys}, conflicts


def _conflict_rejects(batch: list[Parsed[ClaimLine]], conflicts: list[tuple[int, str]]) -> Outgoing:
    """A different line under a line key already taken is refused, never dropped: a changed claim comes as an
    adjustment or a cancellation, which has a key of its own."""
    out: Outgoing = []
    for position, name in conflicts:
        reason = Reason(
            name,
            "conflicting_duplicate",
            f"a line with this line key (source, claim, line, adjustment type, effective date) was received before"
            f" with a different {name}; send a change as an adjustment or a cancellation",
        )
        out.append(reject_claim(batch[position].record, [reason]))
    EVENTS_REJECTED.labels(PRODUCER, CLAIMS_SUBMITTED.name, "conflicting_duplicate").inc(len(out))
    return out


async def _supersede(conn: Conn, new: list[ClaimLine]) -> tuple[set[str], Deltas]:
    """Final action for versioned groups: mark every version but the greatest superseded, and reverse the
    spend of a version that had counted until now. Returns the new lines that do not count."""
    grouped = [v for v in new if v.version_group]
    if not grouped:
        return set(), []
    rows = await conn.fetch(
        f"SELECT l.line_key, l.member_id, l.version_group, l.version_rank, l.superseded FROM {SCHEMA}.claim_lines l"
        " JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[])) AS g(member_id, version_group)"
        " ON l.member_id = g.member_id AND l.version_group = g.version_group",
        [v.member_id for v in grouped],
        [v.version_group for v in grouped],
    )
    loser_keys = losers([Version(**dict(r)) for r in rows])
    if not loser_keys:
        return set(), []
    await conn.execute(f"UPDATE {SCHEMA}.claim_lines SET superseded = true WHERE line_key = ANY($1::text[])", loser_keys)
    return set(loser_keys), await _reverse(conn, loser_keys)


async def _reverse(conn: Conn, line_keys: list[str]) -> Deltas:
    """Take back the spend these lines contribute to every contract they are active in."""
    rows = await conn.fetch(
        f"UPDATE {SCHEMA}.emitted e SET active = false FROM {SCHEMA}.claim_lines l"
        " WHERE e.line_key = ANY($1::text[]) AND e.active AND l.line_key = e.line_key"
        " RETURNING e.line_key, e.contract_id, e.member_id, e.generation, e.amount, l.claim_type, l.service_date, l.paid_date",
        line_keys,
    )
    out: Deltas = []
    for r in rows:
        c = Correction(r["line_key"], r["generation"], "-", -r["amount"], None)
        out.append(_spend(r["contract_id"], r["member_id"], c, dict(r), "aged_nondual"))
    return out


async def apply_claims(uow: UnitOfWork, batch: list[Parsed[ClaimLine]], *, partitions: int = SPEND_BATCHES.partitions) -> None:
    """Load what the batch needs, decide in domain/claims.py, save and publish what it decided."""
    conn = uow.conn
    admitted = admissible(p.envelope.payload for p in batch)
    DENIED.inc(admitted.denied)
    EVENTS_DUPLICATE.labels(PRODUCER, CLAIMS_SUBMITTED.name).inc(admitted.duplicates)
    uow.publish_all(_conflict_rejects(batch, admitted.conflicts))
    lines = admitted.lines
    if not lines:
        return
    await lock_members(conn, {v.member_id for v in lines.values()})
    renamed = await current_ids(conn, {(v.payer, v.member_id) for v in lines.values()})
    if renamed:
        await lock_members(conn, set(renamed.values()))
        # The keys stay: a line key (computed once, above) does not include the member id a rename changes.
        lines = {
            k: v.model_copy(update={"member_id": renamed[(v.payer, v.member_id)]}) if (v.payer, v.member_id) in renamed else v
            for k, v in lines.items()
        }
    new, stored_conflicts = await _store(conn, lines)
    uow.publish_all(_conflict_rejects(batch, [(admitted.positions[k], name) for k, name in stored_conflicts.items()]))
    EVENTS_DUPLICATE.labels(PRODUCER, CLAIMS_SUBMITTED.name).inc(len(lines) - len(new) - len(stored_conflicts))
    if not new:
        return
    not_counted, out = await _supersede(conn, list(new.values()))
    attributed, unattributed = attribute(new, not_counted, await _assignments(conn, {v.member_id for v in new.values()}))
    UNATTRIBUTED.inc(unattributed)
    for a in attributed:
        line = new[a.line_key]
        info = {"claim_type": line.claim_type, "service_date": line.from_date, "paid_date": line.paid_date}
        out.append(
            _spend(a.contract_id, a.member_id, Correction(a.line_key, 1, "+", a.amount, a.period), info, a.period.enrollment_type)
        )
    if attributed:
        await conn.execute(
            f"INSERT INTO {SCHEMA}.emitted (line_key, contract_id, member_id, generation, active, amount)"
            " SELECT l, c, m, 1, true, a FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[]) AS e(l, c, m, a)",
            [a.line_key for a in attributed],
            [a.contract_id for a in attributed],
            [a.member_id for a in attributed],
            [a.amount for a in attributed],
        )
    # Lines that name their correlation (a load's id) keep it; the others take the first event's, so a feed
    # without correlation ids is not split into a batch per line.
    origins = {p.envelope.payload.line_key: p.envelope.correlation_id for p in batch if p.envelope.correlation_id}
    uow.publish_all(spend_batches(out, partitions, batch[0].envelope.correlation, origins))


async def _assignments(conn: Conn, members: set[str]) -> dict[str, list[Assignment]]:
    rows = await conn.fetch(
        f"SELECT member_id, contract_id, payer, periods::text AS periods, claim_types FROM {SCHEMA}.assignments"
        " WHERE member_id = ANY($1::text[])",
        list(members),
    )
    out: dict[str, list[Assignment]] = defaultdict(list)
    for r in rows:
        types = None if r["claim_types"] is None else _claim_types(tuple(r["claim_types"]))
        out[r["member_id"]].append(Assignment(r["contract_id"], r["payer"], _periods(r["periods"]), types))
    return out


async def reconcile(
    conn: Conn,
    member_id: str,
    contract_id: str,
    payer: str,
    periods: tuple[AttributionPeriod, ...],
    claim_types: Collection[str] | None,
) -> Deltas:
    """Emit what makes the member's spend in the contract equal the signed sum of the lines its periods cover,
    of the payer and the claim types the contract counts."""
    line_rows = await conn.fetch(
        f"SELECT line_key, payer, claim_type, service_date, paid_date, amount, superseded FROM {SCHEMA}.claim_lines"
        " WHERE member_id = $1",
        member_id,
    )
    emitted_rows = await conn.fetch(
        f"SELECT line_key, generation, active, amount FROM {SCHEMA}.emitted WHERE member_id = $1 AND contract_id = $2",
        member_id,
        contract_id,
    )
    info = {r["line_key"]: dict(r) for r in line_rows}
    emitted = {r["line_key"]: Emitted(r["generation"], r["active"], r["amount"]) for r in emitted_rows}
    counted = {
        k: (v["service_date"], v["amount"])
        for k, v in info.items()
        if v["payer"] == payer and not v["superseded"] and counts(v["claim_type"], claim_types)
    }
    # Lines of another payer (the contract's payer changed), of claim types the contract does not count, or
    # superseded versions are covered by no period.
    other = {k: (v["service_date"], v["amount"]) for k, v in info.items() if k not in counted}
    out: Deltas = []
    for c in corrections(counted, emitted, periods) + corrections(other, emitted, ()):
        line = info[c.line_key]
        etype = c.period.enrollment_type if c.period else (periods[0].enrollment_type if periods else "aged_nondual")
        out.append(_spend(contract_id, member_id, c, line, etype))
        await conn.execute(
            f"INSERT INTO {SCHEMA}.emitted (line_key, contract_id, member_id, generation, active, amount)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (line_key, contract_id) DO UPDATE"
            " SET member_id = excluded.member_id, generation = excluded.generation, active = excluded.active,"
            " amount = excluded.amount",
            c.line_key,
            contract_id,
            member_id,
            c.generation,
            c.sign == "+",
            c.amount if c.sign == "+" else emitted[c.line_key].amount,
        )
    return out


async def apply_attribution(
    uow: UnitOfWork, batch: list[Parsed[AttributionEvent]], *, partitions: int = SPEND_BATCHES.partitions
) -> None:
    conn = uow.conn
    out: Deltas = []
    await lock_members(conn, {p.envelope.payload.member_id for p in batch})
    renamed = await current_ids(conn, {(p.envelope.payload.payer, p.envelope.payload.member_id) for p in batch})
    if renamed:
        await lock_members(conn, set(renamed.values()))
    for p in batch:
        a = p.envelope.payload
        member = renamed.get((a.payer, a.member_id), a.member_id)
        current = await conn.fetchval(
            f"SELECT contract_version FROM {SCHEMA}.assignments WHERE member_id = $1 AND contract_id = $2 FOR UPDATE",
            member,
            a.contract_id,
        )
        if current is not None and current >= a.contract_version:
            continue  # an older version arriving late changes nothing
        await conn.execute(
            f"INSERT INTO {SCHEMA}.assignments (member_id, contract_id, payer, contract_version, periods, claim_types)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (member_id, contract_id) DO UPDATE"
            " SET payer = excluded.payer, contract_version = excluded.contract_version, periods = excluded.periods,"
            " claim_types = excluded.claim_types",
            member,
            a.contract_id,
            a.payer,
            a.contract_version,
            [period.model_dump(mode="json") for period in a.periods],
            None if a.claim_types is None else list(a.claim_types),
        )
        out += await reconcile(conn, member, a.contract_id, a.payer, a.periods, a.claim_types)
    uow.publish_all(spend_batches(out, partitions, batch[0].envelope.correlation if batch else None))


async def apply_id_changes(
    uow: UnitOfWork, batch: list[Parsed[MemberIdChanged]], *, partitions: int = SPEND_BATCHES.partitions
) -> None:
    """Re-key a retired member id: its claims (earlier ones too) move to the newest id, with reversing spend
    under the old id and new spend under the new one, and later claims under the old id are mapped on arrival."""
    conn = uow.conn
    out: Deltas = []
    for p in batch:
        change = p.envelope.payload
        payer = change.payer
        await lock_members(conn, {change.previous_id, change.current_id})
        newest = (await current_ids(conn, {(payer, change.current_id)})).get((payer, change.current_id), change.current_id)
        if newest == change.previous_id:
            log.warning("member_id_cycle_ignored", source=change.source)
            continue
        await lock_members(conn, {newest})
        await conn.execute(
            f"INSERT INTO {SCHEMA}.member_xref (payer, previous_id, current_id, effective_date) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (payer, previous_id) DO UPDATE SET current_id = excluded.current_id,"
            " effective_date = excluded.effective_date",
            payer,
            change.previous_id,
            newest,
            change.effective_date,
        )
        # Ids that led to the retired one now lead to the newest: the table never holds a chain.
        await conn.execute(
            f"UPDATE {SCHEMA}.member_xref SET current_id = $3 WHERE payer = $1 AND current_id = $2",
            payer,
            change.previous_id,
            newest,
        )
        moved = await conn.fetch(
            f"UPDATE {SCHEMA}.claim_lines SET member_id = $3 WHERE payer = $1 AND member_id = $2 RETURNING line_key",
            payer,
            change.previous_id,
            newest,
        )
        keys = [r["line_key"] for r in moved]
        if keys:
            out += await _reverse(conn, keys)
            await conn.execute(f"UPDATE {SCHEMA}.emitted SET member_id = $2 WHERE line_key = ANY($1::text[])", keys, newest)
        # The retired id's assignments become the newest id's where it has none of its own for that contract.
        await conn.execute(
            f"UPDATE {SCHEMA}.assignments a SET member_id = $3 WHERE a.member_id = $2 AND a.payer = $1 AND NOT EXISTS"
            f" (SELECT 1 FROM {SCHEMA}.assignments b WHERE b.member_id = $3 AND b.contract_id = a.contract_id)",
            payer,
            change.previous_id,
            newest,
        )
        for a in await conn.fetch(
            f"SELECT contract_id, payer, periods, claim_types FROM {SCHEMA}.assignments WHERE member_id = $1 AND payer = $2",
            newest,
            payer,
        ):
            periods = tuple(AttributionPeriod.model_validate(x) for x in a["periods"])
            out += await reconcile(conn, newest, a["contract_id"], a["payer"], periods, a["claim_types"])
    uow.publish_all(spend_batches(out, partitions, batch[0].envelope.correlation if batch else None))


async def store_rejects(uow: UnitOfWork, batch: list[Parsed[ClaimRejected]]) -> None:
    """Keep every reject for listing and replay (claims_ingest's own and the file loaders')."""
    rows = []
    for p in batch:
        r = p.envelope.payload
        if r.source_topic == "file":
            source = f"{r.source_file} line {r.source_line} ({r.source_format})"
        else:
            source = f"{r.source_topic} partition {r.partition} offset {r.offset}"
        reasons = [x.model_dump() for x in r.reasons]
        rows.append((p.envelope.event_id, r.source_topic, source, reasons, r.original, r.original_encoding, r.original_size))
    await uow.conn.executemany(
        f"INSERT INTO {SCHEMA}.rejects (event_id, source_topic, source, reasons, original, original_encoding, original_size)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        rows,
    )
