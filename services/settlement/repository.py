"""Settlement state per contract in the settlement schema, and the position recomputed from it."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from decimal import Decimal
from itertools import chain
from typing import Any

from prometheus_client import Gauge
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.settlement.domain.contract_position import Snapshot, aggregate, position, position_event, thresholds
from shared.consumer import Parsed
from shared.db import Conn
from shared.envelope import new_envelope
from shared.events import (
    POSITION_UPDATED,
    ContractState,
    NotificationEvent,
    QualityResult,
    SettlementPosition,
    SpendDelta,
)
from shared.logging import get_logger
from shared.metrics import REGISTRY
from shared.money import ZERO
from shared.outbox import outbox_insert
from shared.terms import ContractTerms
from shared.topics import SETTLEMENT
from shared.unit_of_work import Outgoing, UnitOfWork

log = get_logger(__name__)
SCHEMA = "settlement"
PRODUCER = "settlement"
# Generic plans: PostgreSQL's default kept planning the position state read afresh on every pass (0.6 ms of
# planning for 0.1 ms of execution with one contract), and the small passes of a steady feed are most passes.
# bench.positions, passes of 1 contract: 1.83/1.87 -> 1.67/1.75 ms; passes of 500 unchanged.
DB_SESSION = {"plan_cache_mode": "force_generic_plan"}


async def store_contract(conn: Conn, state: ContractState) -> bool:
    row = await conn.fetchrow(
        f"INSERT INTO {SCHEMA}.contracts (contract_id, version, state) VALUES ($1, $2, $3)"
        " ON CONFLICT (contract_id) DO UPDATE SET version = excluded.version, state = excluded.state"
        f" WHERE {SCHEMA}.contracts.version < excluded.version RETURNING contract_id",
        state.contract_id,
        state.version,
        state.model_dump(mode="json"),
    )
    return row is not None


async def store_quality(conn: Conn, q: QualityResult) -> bool:
    row = await conn.fetchrow(
        f"INSERT INTO {SCHEMA}.quality (contract_id, performance_year, version, quality_score, quality_standard)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (contract_id, performance_year) DO UPDATE"
        " SET version = excluded.version, quality_score = excluded.quality_score,"
        " quality_standard = excluded.quality_standard"
        f" WHERE {SCHEMA}.quality.version < excluded.version RETURNING contract_id",
        q.contract_id,
        q.performance_year,
        q.version,
        q.quality_score,
        q.quality_standard,
    )
    return row is not None


def _mark(param: str, correlations: str) -> str:
    """The statement marking contracts (`param`: the placeholder of a sorted text[]; `correlations`: of a text[]
    beside it) for a new position. A second mark keeps the first one's time: passes take the oldest first, so a
    busy contract is not starved; it takes the newer correlation id."""
    return (
        f"INSERT INTO {SCHEMA}.pending_positions (contract_id, correlation_id)"
        f" SELECT * FROM unnest({param}::text[], {correlations}::text[])"
        f" ON CONFLICT (contract_id) DO UPDATE SET mark = {SCHEMA}.pending_positions.mark + 1,"
        " correlation_id = coalesce(excluded.correlation_id, pending_positions.correlation_id)"
    )


async def apply_spend(conn: Conn, deltas: list[SpendDelta], correlations: Mapping[str, str] | None = None) -> set[str]:
    """Aggregate a batch's deltas, add them, and mark their contracts (with the correlation id of the spend, by
    contract) for a new position; returns them."""
    spend = aggregate(deltas)
    by_member, by_lag, activity = spend.by_member, spend.by_lag, spend.activity
    # One statement (the CTEs touch different tables), and the contracts marked for a new position in it: a
    # batch costs one round trip rather than five. member_stats moves with member_spend: each member's amount
    # before is its amount after (as the upsert left it, whatever ran concurrently) less this batch's delta,
    # exact as amounts have 6 decimals at most; xmax = 0 marks the rows the upsert inserted.
    await conn.execute(
        f"WITH members AS (INSERT INTO {SCHEMA}.member_spend (contract_id, member_id, enrollment_type, amount)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[])"
        " ON CONFLICT (contract_id, member_id) DO UPDATE"
        f" SET amount = {SCHEMA}.member_spend.amount + excluded.amount, enrollment_type = excluded.enrollment_type"
        " RETURNING contract_id, member_id, amount, xmax = 0 AS inserted),"
        f" stats AS (INSERT INTO {SCHEMA}.member_stats (contract_id, members, total, sum_of_squares)"
        " SELECT m.contract_id, count(*) FILTER (WHERE m.inserted), sum(d.amount),"
        " sum(m.amount * m.amount - (m.amount - d.amount) * (m.amount - d.amount))"
        " FROM members m JOIN unnest($1::text[], $2::text[], $4::numeric[]) AS d(contract_id, member_id, amount)"
        " ON d.contract_id = m.contract_id AND d.member_id = m.member_id"
        " GROUP BY m.contract_id ORDER BY m.contract_id"
        " ON CONFLICT (contract_id) DO UPDATE"
        f" SET members = {SCHEMA}.member_stats.members + excluded.members,"
        f" total = {SCHEMA}.member_stats.total + excluded.total,"
        f" sum_of_squares = {SCHEMA}.member_stats.sum_of_squares + excluded.sum_of_squares),"
        f" lags AS (INSERT INTO {SCHEMA}.lag_spend (contract_id, service_month, lag, amount)"
        " SELECT * FROM unnest($5::text[], $6::date[], $7::int[], $8::numeric[])"
        f" ON CONFLICT (contract_id, service_month, lag) DO UPDATE SET amount = {SCHEMA}.lag_spend.amount + excluded.amount),"
        f" activity AS (INSERT INTO {SCHEMA}.activity (contract_id, lines, as_of)"
        " SELECT * FROM unnest($9::text[], $10::bigint[], $11::date[])"
        " ON CONFLICT (contract_id) DO UPDATE"
        f" SET lines = {SCHEMA}.activity.lines + excluded.lines,"
        f" as_of = greatest({SCHEMA}.activity.as_of, excluded.as_of), last_spend_at = now())"
        f" {_mark('$12', '$13')}",
        [k[0] for k in by_member],
        [k[1] for k in by_member],
        [v[0] for v in by_member.values()],
        [v[1] for v in by_member.values()],
        [k[0] for k in by_lag],
        [k[1] for k in by_lag],
        [k[2] for k in by_lag],
        list(by_lag.values()),
        list(activity),
        [v[0] for v in activity.values()],
        [v[1] for v in activity.values()],
        sorted(activity),
        [(correlations or {}).get(c) for c in sorted(activity)],
    )
    return set(activity)


# Everything a position needs of each contract, in one statement for any number of contracts: a pass
# recomputes many, and a round trip per table per pass was a good part of its cost.
_STATE_QUERY = f"""
SELECT k.contract_id, c.version, a.lines, a.as_of, p.sequence, b.months_before, b.amounts_before,
       l.lag_months, l.lags, l.lag_amounts, coalesce(s.members, 0) AS members, s.total, s.sum_of_squares, q.years,
       q.scores, q.standards
FROM unnest($1::text[]) AS k(contract_id)
LEFT JOIN {SCHEMA}.contracts c ON c.contract_id = k.contract_id
LEFT JOIN {SCHEMA}.activity a ON a.contract_id = k.contract_id
LEFT JOIN {SCHEMA}.positions p ON p.contract_id = k.contract_id
LEFT JOIN {SCHEMA}.member_stats s ON s.contract_id = k.contract_id
CROSS JOIN LATERAL (
    SELECT array_agg(to_char(service_month, 'YYYY-MM')) AS months_before, array_agg(amount) AS amounts_before
    FROM {SCHEMA}.spend_before_lags WHERE contract_id = k.contract_id) b
CROSS JOIN LATERAL (
    SELECT array_agg(to_char(service_month, 'YYYY-MM')) AS lag_months, array_agg(lag) AS lags,
           array_agg(amount) AS lag_amounts
    FROM {SCHEMA}.lag_spend WHERE contract_id = k.contract_id) l
CROSS JOIN LATERAL (
    SELECT array_agg(performance_year) AS years, array_agg(quality_score) AS scores,
           array_agg(quality_standard) AS standards
    FROM {SCHEMA}.quality WHERE contract_id = k.contract_id) q
"""


async def _state_rows(conn: Conn, ids: list[str]) -> dict[str, Any]:
    return {r["contract_id"]: r for r in await conn.fetch(_STATE_QUERY, ids)}


async def _truncated(conn: Conn, terms: dict[str, ContractTerms], rows: dict[str, Any]) -> dict[str, Decimal]:
    """Truncated totals, only for contracts with thresholds (the capped sum costs as much again as the rest of
    the read together); without thresholds the truncated total is the total."""
    limits = [
        (cid, etype, value)
        for cid, t in terms.items()
        for etype, value in thresholds(t, rows[cid]["as_of"] if cid in rows else None).items()
    ]
    if not limits:
        return {}
    return {
        r["contract_id"]: r["truncated"]
        for r in await conn.fetch(
            "SELECT m.contract_id, sum(least(m.amount, coalesce(t.threshold, m.amount))) AS truncated"
            f" FROM {SCHEMA}.member_spend m"
            " LEFT JOIN unnest($1::text[], $2::text[], $3::numeric[]) AS t(contract_id, enrollment_type, threshold)"
            " ON t.contract_id = m.contract_id AND t.enrollment_type = m.enrollment_type"
            " WHERE m.contract_id = ANY($4::text[]) GROUP BY m.contract_id",
            [x[0] for x in limits],
            [x[1] for x in limits],
            [x[2] for x in limits],
            list({x[0] for x in limits}),
        )
    }


def _paid_by_month(row: Any) -> dict[str, Decimal]:
    """Each service month's spend, in month order: the sum of its lags, and of any spend applied before lags
    were kept (migration 006)."""
    months = chain(row["lag_months"] or (), row["months_before"] or ())
    amounts = chain(row["lag_amounts"] or (), row["amounts_before"] or ())
    totals: dict[str, Decimal] = {}
    for month, amount in zip(months, amounts, strict=True):
        totals[month] = totals[month] + amount if month in totals else amount
    return dict(sorted(totals.items()))


async def _snapshots(conn: Conn, terms: dict[str, ContractTerms], rows: dict[str, Any] | None = None) -> dict[str, Snapshot]:
    """Each contract's snapshot under the given terms; `rows` when the caller has read them already."""
    if rows is None:
        rows = await _state_rows(conn, list(terms))
    truncated = await _truncated(conn, terms, rows)
    out: dict[str, Snapshot] = {}
    for cid, t in terms.items():
        r = rows[cid]
        total = r["total"] if r["total"] is not None else ZERO
        quality = dict(zip(r["years"] or (), zip(r["scores"] or (), r["standards"] or (), strict=True), strict=True))
        score, standard = quality.get(t.performance_year, (None, None))
        out[cid] = Snapshot(
            paid_by_month=_paid_by_month(r),
            members=r["members"],
            total=total,
            sum_of_squares=r["sum_of_squares"] if r["sum_of_squares"] is not None else ZERO,
            truncated_total=truncated.get(cid, total),
            lines=r["lines"] or 0,
            as_of=r["as_of"],
            quality_score=score,
            quality_standard=standard,
            sequence=r["sequence"] or 0,
            paid_by_lag=dict(zip(zip(r["lag_months"] or (), r["lags"] or (), strict=True), r["lag_amounts"] or (), strict=True)),
        )
    return out


POSITION_LOCKS = 7301  # advisory lock class: one recompute of a contract at a time across instances


async def mark_pending(conn: Conn, contract_ids: Mapping[str, str | None] | Collection[str]) -> None:
    """Ask for a new position of these contracts (with the correlation id of the change, when given), in the
    transaction that changes them."""
    correlations = contract_ids if isinstance(contract_ids, Mapping) else dict.fromkeys(contract_ids)
    if correlations:
        ids = sorted(correlations)  # one order everywhere: markers cannot deadlock
        await conn.execute(_mark("$1", "$2"), ids, [correlations[c] for c in ids])


async def publish_pending(conn: Conn, limit: int) -> tuple[int, Outgoing]:
    """One recompute pass, in the caller's transaction: (contracts recomputed, their position events, which
    are in the outbox already).

    The pass holds no row lock while it computes, so consumers keep applying and marking meanwhile. It
    reads the marks, recomputes, and removes only the marks it read: a mark committed during the pass
    survives it, and the next pass publishes that change. An advisory lock per contract keeps two passes
    (scaled-out instances) from computing the same contract at once; a contract another pass holds is
    left for later."""
    rows = await conn.fetch(
        "SELECT contract_id, mark, correlation_id, age FROM (SELECT contract_id, mark, correlation_id,"
        f" extract(epoch FROM now() - marked_at) AS age FROM {SCHEMA}.pending_positions"
        " ORDER BY marked_at, contract_id LIMIT $1) AS p"
        " WHERE pg_try_advisory_xact_lock($2, hashtext(contract_id))",
        limit,
        POSITION_LOCKS,
    )
    # Passes take the oldest marks first: the first is how long the stalest waiting position has waited.
    PENDING_OLDEST_AGE.set(float(rows[0]["age"]) if rows else 0)
    if not rows:
        return 0, []
    outgoing = await recompute(conn, {r["contract_id"]: r["correlation_id"] for r in rows})
    done = sorted((r["contract_id"], r["mark"]) for r in rows)
    # Row locks in contract order, as markers take them, so the two never wait on each other in a cycle.
    await conn.execute(
        f"SELECT 1 FROM {SCHEMA}.pending_positions WHERE contract_id = ANY($1::text[]) ORDER BY contract_id FOR UPDATE",
        [c for c, _ in done],
    )
    await conn.execute(
        f"DELETE FROM {SCHEMA}.pending_positions p USING unnest($1::text[], $2::bigint[]) AS k(contract_id, mark)"
        " WHERE p.contract_id = k.contract_id AND p.mark = k.mark",
        [c for c, _ in done],
        [m for _, m in done],
    )
    return len(rows), outgoing


async def recompute(conn: Conn, contract_ids: Mapping[str, str | None] | set[str]) -> Outgoing:
    """Recompute and store the position of each contract whose terms are known, and queue one event each in
    the outbox; returns those events. Callers hold the contracts' position locks (publish_pending), which keep
    two recomputes of one contract apart."""
    rows = await _state_rows(conn, sorted(contract_ids))
    # Spend that arrived before its contract gets a position when the contract does.
    states = {cid: _STATES.get((cid, r["version"])) for cid, r in rows.items() if r["version"] is not None}
    missing = [cid for cid, state in states.items() if state is None]
    if missing:  # only states not seen yet in this process are read and decoded
        for r in await conn.fetch(f"SELECT state FROM {SCHEMA}.contracts WHERE contract_id = ANY($1::text[])", missing):
            state = _state(r["state"])
            states[state.contract_id] = state
    known = {cid: state for cid, state in states.items() if state is not None}
    if not known:
        return []
    snapshots = await _snapshots(conn, {cid: s.terms for cid, s in known.items()}, rows)
    correlations = contract_ids if isinstance(contract_ids, Mapping) else {}
    events = [
        new_envelope(POSITION_UPDATED, position_event(s, snapshots[cid]), PRODUCER, correlation_id=correlations.get(cid))
        for cid, s in known.items()
    ]
    for e in events:
        if e.payload.gate == "cannot_settle":
            log.warning("position_cannot_settle", contract_id=e.payload.contract_id, error=e.payload.explanation[-1])
    # One statement stores each position and queues its event: the stored position is the event's payload,
    # taken from the event's JSON, which is encoded and sent once. A position of an earlier day that this one
    # replaces becomes that day's history point (every sub-statement reads the rows as they were before it), so
    # a position is written once, not to the current table and the history both. The position events are in
    # the outbox when this returns.
    topics = "array_fill($4::text, ARRAY[cardinality($1::text[])])"
    values = "(SELECT array_agg(convert_to(v, 'UTF8') ORDER BY n) FROM unnest($3::text[]) WITH ORDINALITY AS j(v, n))"
    await conn.execute(
        f"WITH ended AS (INSERT INTO {SCHEMA}.position_history (contract_id, day, sequence, position)"
        f" SELECT contract_id, day, sequence, position FROM {SCHEMA}.positions"
        " WHERE contract_id = ANY($1::text[]) AND day < current_date"
        " ON CONFLICT (contract_id, day) DO UPDATE SET sequence = excluded.sequence, position = excluded.position),"
        f" stored AS (INSERT INTO {SCHEMA}.positions (contract_id, sequence, position)"
        " SELECT c, s, e::jsonb -> 'payload' FROM unnest($1::text[], $2::bigint[], $3::text[]) AS p(c, s, e)"
        " ON CONFLICT (contract_id) DO UPDATE SET sequence = excluded.sequence, position = excluded.position,"
        " updated_at = now(), day = current_date)"
        f" {outbox_insert(SCHEMA, topics, '$1::text[]', '$5::uuid[]', values)}",
        [e.payload.contract_id for e in events],
        [e.payload.sequence for e in events],
        [e.to_bytes().decode() for e in events],
        SETTLEMENT.name,
        [e.event_id for e in events],
    )
    for e in events:
        POSITION_GAUGES.export(e.payload)
    return [(SETTLEMENT, e.payload.contract_id, e) for e in events]


class PositionGauges(Collector):
    """The business gauges, one series per contract (what the Grafana dashboard and the alert rules read), taken
    from each contract's latest position when Prometheus scrapes: a new position replaces one entry here rather
    than updating five labelled gauges, and a scrape every few seconds reads what a position every second wrote."""

    GAUGES = (
        ("acoflow_position_shared_savings_losses", "Projected shared savings (< 0: losses)"),
        ("acoflow_position_exposure_now", "Projected losses owed"),
        ("acoflow_position_exposure_at_cap", "Losses owed at the cap"),
        ("acoflow_position_probability_clears_msr", "P(savings rate clears the MSR)"),
        ("acoflow_position_updated_timestamp_seconds", "When the contract's position was last published (age: time() - this)"),
    )

    def __init__(self) -> None:
        self.latest: dict[str, tuple[float, ...]] = {}

    def export(self, p: SettlementPosition) -> None:
        self.latest[p.contract_id] = (
            float(p.projected_shared_savings_losses),
            float(p.downside_exposure_now),
            float(p.downside_exposure_at_cap),
            float(p.probability_clears_msr),
            time.time(),
        )

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(name, text, labels=["contract"]) for name, text in self.GAUGES]

    def collect(self) -> list[GaugeMetricFamily]:
        families = self.describe()
        for cid, values in list(self.latest.items()):
            for family, value in zip(families, values, strict=True):
                family.add_metric([cid], value)
        return families


POSITION_GAUGES = PositionGauges()
REGISTRY.register(POSITION_GAUGES)
PENDING_OLDEST_AGE = Gauge(
    "acoflow_positions_pending_oldest_age_seconds",
    "How long the oldest change waiting for a new position has waited (0: none waiting)",
    registry=REGISTRY,
)


_STATES: dict[tuple[str, int], ContractState] = {}


def _state(raw: dict[str, Any]) -> ContractState:
    """Contract states are immutable per version, so each is validated once per process."""
    key = (raw["contract_id"], raw["version"])
    state = _STATES.get(key)
    if state is None:
        if len(_STATES) > 20_000:
            _STATES.clear()
        state = _STATES[key] = ContractState.model_validate(raw)
    return state


async def what_if(conn: Conn, contract_id: str, alternatives: list[ContractTerms]) -> list[SettlementPosition] | None:
    """The contract's position now, then under each alternative set of terms; nothing is stored or published."""
    row = await conn.fetchrow(f"SELECT state FROM {SCHEMA}.contracts WHERE contract_id = $1", contract_id)
    if row is None:
        return None
    state = _state(row["state"])
    out = []
    for terms in [state.terms, *alternatives]:
        snapshot = (await _snapshots(conn, {contract_id: terms}))[contract_id]
        out.append(position(state, terms, snapshot))
    return out


async def current_terms(conn: Conn, contract_id: str) -> ContractTerms | None:
    row = await conn.fetchrow(f"SELECT state FROM {SCHEMA}.contracts WHERE contract_id = $1", contract_id)
    return None if row is None else _state(row["state"]).terms


async def positions(
    conn: Conn, contract_id: str | None = None, limit: int = 1000, after: str | None = None
) -> list[dict[str, Any]]:
    if contract_id is None:
        rows = await conn.fetch(
            f"SELECT position FROM {SCHEMA}.positions WHERE $2::text IS NULL OR contract_id > $2 ORDER BY contract_id LIMIT $1",
            limit,
            after,
        )
    else:
        rows = await conn.fetch(f"SELECT position FROM {SCHEMA}.positions WHERE contract_id = $1", contract_id)
    return [r["position"] for r in rows]


async def history(conn: Conn, contract_id: str, limit: int = 400) -> list[dict[str, Any]]:
    """The contract's position a day, oldest first (the last `limit` days): the ended days' from the history, the
    current day's from the positions (a history row of that day, written before migration 009, is older)."""
    rows = await conn.fetch(
        f"SELECT day, position FROM (SELECT day, position FROM {SCHEMA}.positions WHERE contract_id = $1 UNION ALL"
        f" SELECT h.day, h.position FROM {SCHEMA}.position_history h WHERE h.contract_id = $1 AND NOT EXISTS"
        f" (SELECT 1 FROM {SCHEMA}.positions p WHERE p.contract_id = $1 AND p.day <= h.day)"
        " ORDER BY day DESC LIMIT $2) AS h ORDER BY day",
        contract_id,
        limit,
    )
    return [{"day": r["day"].isoformat(), **r["position"]} for r in rows]


async def store_alerts(uow: UnitOfWork, batch: list[Parsed[NotificationEvent]]) -> None:
    await uow.conn.executemany(
        f"INSERT INTO {SCHEMA}.alerts (event_id, contract_id, alert_id, rule, kind, detail) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT DO NOTHING",
        [(p.envelope.event_id, e.contract_id, e.alert_id, e.rule, e.kind, e.detail) for p in batch for e in [p.envelope.payload]],
    )


async def alerts(conn: Conn, contract_id: str, limit: int = 50) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT alert_id, rule, kind, detail, at FROM {SCHEMA}.alerts WHERE contract_id = $1 ORDER BY at DESC LIMIT $2",
        contract_id,
        limit,
    )
    return [dict(r) for r in rows]


async def republish(uow: UnitOfWork) -> int:
    """Publish every contract's current position again (notifications keeps the newest sequence it has seen)."""
    rows = await uow.conn.fetch(f"SELECT contract_id, position FROM {SCHEMA}.positions")
    for r in rows:
        position = SettlementPosition.model_validate(r["position"])
        uow.publish(SETTLEMENT, r["contract_id"], new_envelope(POSITION_UPDATED, position, PRODUCER))
    return len(rows)
