"""Contract versions, rosters, quality results and the audit log in the contracts schema.
Every change writes a new version and its events to the outbox in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.contracts.domain.roster import RosterMember, attribution_changes, periods_of, summarize, unpriced
from shared.db import Conn
from shared.envelope import Envelope, new_envelope
from shared.events import (
    ATTRIBUTION_CHANGED,
    CONTRACT_CHANGED,
    QUALITY_RECORDED,
    Attribution,
    ContractState,
    QualityResult,
)
from shared.terms import ContractTerms, QualityStandard
from shared.topics import ATTRIBUTION, CONTRACTS, QUALITY, TopicSpec
from shared.unit_of_work import UnitOfWork

SCHEMA = "contracts"
PRODUCER = "contracts"


class VersionConflict(Exception):
    pass


class UnsettleableVersion(ValueError):
    """The version's roster and terms cannot be settled together; the message names the member and field."""


def _state(row: asyncpg.Record) -> ContractState:
    return ContractState(
        contract_id=row["contract_id"],
        version=row["version"],
        name=row["name"],
        payer=row["payer"],
        terms=ContractTerms.model_validate(row["terms"]),
        roster=row["roster_summary"],
        changed_by=row["changed_by"],
        changed_at=row["changed_at"],
    )


async def latest(conn: Conn, contract_id: str, *, lock: bool = False) -> ContractState | None:
    row = await conn.fetchrow(
        f"SELECT * FROM {SCHEMA}.contract_versions WHERE contract_id = $1 ORDER BY version DESC LIMIT 1"
        + (" FOR UPDATE" if lock else ""),
        contract_id,
    )
    return None if row is None else _state(row)


async def history(conn: Conn, contract_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT version, actor, action, changes, at FROM {SCHEMA}.audit_log WHERE contract_id = $1 ORDER BY id",
        contract_id,
    )
    return [dict(r) for r in rows]


async def list_latest(conn: Conn) -> list[ContractState]:
    rows = await conn.fetch(
        f"SELECT DISTINCT ON (contract_id) * FROM {SCHEMA}.contract_versions ORDER BY contract_id, version DESC"
    )
    return [_state(r) for r in rows]


async def roster(conn: Conn, contract_id: str, version: int) -> list[RosterMember]:
    rows = await conn.fetch(
        f"SELECT entries FROM {SCHEMA}.roster_members WHERE contract_id = $1 AND version = $2 ORDER BY member_id",
        contract_id,
        version,
    )
    return [RosterMember.model_validate(e) for r in rows for e in r["entries"]]


def _terms_changes(before: ContractTerms | None, after: ContractTerms) -> dict[str, Any]:
    old = {} if before is None else before.model_dump(mode="json")
    new = after.model_dump(mode="json")
    return {k: {"from": old.get(k), "to": v} for k, v in new.items() if old.get(k) != v}


def _same(a: list[RosterMember], b: list[RosterMember]) -> bool:
    return {m.model_dump_json() for m in a} == {m.model_dump_json() for m in b}


async def save_version(
    uow: UnitOfWork,
    *,
    contract_id: str,
    name: str,
    payer: str,
    terms: ContractTerms,
    members: list[RosterMember] | None,
    actor: str,
    action: str,
    expect_new: bool = False,
) -> ContractState:
    conn = uow.conn
    prev = await latest(conn, contract_id, lock=True)
    if expect_new and prev is not None:
        raise VersionConflict(f"contract_id: {contract_id!r} already exists (version {prev.version})")
    before_members = [] if prev is None else await roster(conn, contract_id, prev.version)
    after_members = before_members if members is None else members
    problem = unpriced(after_members, terms)
    if problem is not None:
        raise UnsettleableVersion(problem)
    if prev is not None and (prev.name, prev.payer, prev.terms) == (name, payer, terms) and _same(before_members, after_members):
        return prev  # nothing changed: no new version, no events (so `contracts apply` can be re-run safely)
    before = {} if prev is None else periods_of(before_members, prev.terms)
    after = periods_of(after_members, terms)
    version = 1 if prev is None else prev.version + 1
    state = ContractState(
        contract_id=contract_id,
        version=version,
        name=name,
        payer=payer,
        terms=terms,
        roster=summarize(after),
        changed_by=actor,
        changed_at=datetime.now(UTC),
    )
    await conn.execute(
        f"INSERT INTO {SCHEMA}.contract_versions (contract_id, version, name, payer, terms, roster_summary,"
        " changed_by, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        contract_id,
        version,
        name,
        payer,
        terms.model_dump(mode="json"),
        state.roster.model_dump(mode="json"),
        actor,
        state.changed_at,
    )
    grouped: dict[str, list[dict[str, Any]]] = {}
    for m in after_members:
        grouped.setdefault(m.member_id, []).append(m.model_dump(mode="json"))
    await conn.executemany(
        f"INSERT INTO {SCHEMA}.roster_members (contract_id, version, member_id, entries) VALUES ($1, $2, $3, $4)",
        [(contract_id, version, k, v) for k, v in grouped.items()],
    )
    changes: dict[str, Any] = _terms_changes(None if prev is None else prev.terms, terms)
    if prev is None or prev.name != name:
        changes["name"] = {"from": None if prev is None else prev.name, "to": name}
    if prev is None or prev.payer != payer:
        changes["payer"] = {"from": None if prev is None else prev.payer, "to": payer}
    moved = attribution_changes(prev, before, after, payer, terms)
    if moved:
        changes["roster"] = {"members": len(after), "members_changed": len(moved)}
    await conn.execute(
        f"INSERT INTO {SCHEMA}.audit_log (contract_id, version, actor, action, changes) VALUES ($1, $2, $3, $4, $5)",
        contract_id,
        version,
        actor,
        action,
        changes,
    )
    events: list[tuple[TopicSpec, str, Envelope[Any]]] = [
        (CONTRACTS, contract_id, new_envelope(CONTRACT_CHANGED, state, PRODUCER))
    ]
    events += [
        (
            ATTRIBUTION,
            member_id,
            new_envelope(
                ATTRIBUTION_CHANGED,
                Attribution(
                    member_id=member_id,
                    contract_id=contract_id,
                    payer=payer,
                    contract_version=version,
                    periods=periods,
                    claim_types=tuple(sorted(terms.counted_claim_types)),
                ),
                PRODUCER,
            ),
        )
        for member_id, periods in moved.items()
    ]
    uow.publish_all(events)
    return state


async def record_quality(
    uow: UnitOfWork, contract_id: str, year: int, score: Any, standard: QualityStandard, actor: str
) -> QualityResult:
    conn = uow.conn
    version = await conn.fetchval(
        f"SELECT coalesce(max(version), 0) + 1 FROM {SCHEMA}.quality_results WHERE contract_id = $1 AND performance_year = $2",
        contract_id,
        year,
    )
    result = QualityResult(
        contract_id=contract_id,
        performance_year=year,
        version=version,
        quality_score=score,
        quality_standard=standard,
    )
    await conn.execute(
        f"INSERT INTO {SCHEMA}.quality_results (contract_id, performance_year, version, quality_score,"
        " quality_standard, recorded_by) VALUES ($1, $2, $3, $4, $5, $6)",
        contract_id,
        year,
        version,
        result.quality_score,
        standard,
        actor,
    )
    await conn.execute(
        f"INSERT INTO {SCHEMA}.audit_log (contract_id, version, actor, action, changes) VALUES ($1, NULL, $2, $3, $4)",
        contract_id,
        actor,
        "quality",
        result.model_dump(mode="json"),
    )
    uow.publish(QUALITY, contract_id, new_envelope(QUALITY_RECORDED, result, PRODUCER))
    return result


async def republish(uow: UnitOfWork) -> int:
    """Publish every contract's current state and every latest quality result again (consumers keep the newest
    version they have, so a repeat changes nothing and a lost one is restored)."""
    states = await list_latest(uow.conn)
    rows = await uow.conn.fetch(
        f"SELECT DISTINCT ON (contract_id, performance_year) contract_id, performance_year, version, quality_score,"
        f" quality_standard FROM {SCHEMA}.quality_results ORDER BY contract_id, performance_year, version DESC"
    )
    events: list[tuple[TopicSpec, str, Envelope[Any]]] = [
        (CONTRACTS, s.contract_id, new_envelope(CONTRACT_CHANGED, s, PRODUCER)) for s in states
    ]
    events += [(QUALITY, r["contract_id"], new_envelope(QUALITY_RECORDED, QualityResult(**dict(r)), PRODUCER)) for r in rows]
    uow.publish_all(events)
    return len(events)
