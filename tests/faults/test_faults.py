"""Exactly-once money under faults, with a claims feed flowing: kill -9, broker restart, duplicates and
replays, scale-out and rebalance, dropped database connections, poison input, graceful shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from acoflow.stack import SERVICES, Stack, free_port
from shared.settings import Settings
from shared.signing import EventKeys
from tests.faults.harness import (
    Feed,
    auth,
    create_contract,
    invariant,
    publish,
    publish_in_background,
    record,
    settled_after,
    settled_total,
    start_stack,
    timed,
    wait_for_total,
)

pytestmark = pytest.mark.faults


@pytest.fixture
def stack(tmp_path: Path, database: str) -> Iterator[Stack]:
    s = start_stack(tmp_path, database)
    try:
        yield s
    finally:
        s.stop()


def test_kill_9_each_service_in_turn(stack: Stack) -> None:
    feed = Feed("KILL", members=200, lines=4000)
    create_contract(stack, feed)
    thread = publish_in_background(stack.bootstrap, feed.items, per_second=800)
    recoveries = []
    for name in SERVICES:
        time.sleep(1.0)
        stack.services[name].send_signal(signal.SIGKILL)
        stack.services[name].wait()
        started = time.monotonic()
        stack.restart(name)
        recoveries.append(f"{name} {time.monotonic() - started:.1f} s")
    outcome = settled_after(stack, feed, thread)
    record(
        "kill -9 of each service in turn",
        f"{feed.lines:,} lines at 800/s; SIGKILL to contracts, claims_ingest, settlement, notifications, one a second;"
        " each restarted",
        f"back healthy in {', '.join(recoveries)}; {outcome}",
    )


def test_duplicates_and_a_replayed_file(stack: Stack) -> None:
    feed = Feed("DUP", members=100, lines=2000, seed=2)
    create_contract(stack, feed)
    publish(stack.bootstrap, feed.items)
    publish(stack.bootstrap, feed.items[:700])  # the same events again
    # The same file loaded again as new events (new event ids, same rows): counted once by line identity.
    replay = []
    for topic, key, value in feed.items:
        envelope = json.loads(value)
        envelope["event_id"] = str(uuid.uuid4())
        replay.append((topic, key, json.dumps(envelope).encode()))
    publish(stack.bootstrap, replay)
    wait_for_total(stack, feed)
    time.sleep(3)
    observed = invariant(stack, feed)
    record(
        "duplicate events and a replayed file",
        f"{feed.lines:,} lines, 700 of them published twice, then the whole file again with new event ids",
        observed,
    )


def test_scale_out_and_in_rebalances(stack: Stack) -> None:
    feed = Feed("SCALE", members=200, lines=4000, seed=3)
    create_contract(stack, feed)
    thread = publish_in_background(stack.bootstrap, feed.items, per_second=800)
    time.sleep(1.0)
    ports = {name: free_port() for name in ("claims_ingest", "settlement")}
    extra = {name: stack.spawn(name, port) for name, port in ports.items()}
    time.sleep(2.5)  # both groups rebalance to two members mid-stream
    for name in ("claims_ingest", "settlement"):
        stack.services[name].send_signal(signal.SIGTERM)  # the original leaves: another rebalance
        stack.services[name].wait(30)
        stack.services[name], stack.ports[name] = extra[name], ports[name]  # the newcomer carries on alone
    outcome = settled_after(stack, feed, thread)
    record(
        "scale-out and scale-in (rebalance)",
        "a second claims_ingest and settlement join their groups mid-stream, then the first of each leaves",
        outcome,
    )


def test_database_connections_dropped_mid_batch(stack: Stack) -> None:
    feed = Feed("PGKILL", members=200, lines=4000, seed=4)
    create_contract(stack, feed)
    thread = publish_in_background(stack.bootstrap, feed.items, per_second=800)

    async def terminate() -> int:
        conn = await asyncpg.connect(stack.database_url)
        try:
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return len(rows)
        finally:
            await conn.close()

    dropped = 0
    for _ in range(3):
        time.sleep(1.2)
        dropped += asyncio.run(terminate())
    outcome = settled_after(stack, feed, thread)
    alive = all(p.poll() is None for p in stack.services.values())
    assert alive
    record(
        "PostgreSQL connections dropped mid-batch",
        "pg_terminate_backend on every connection of the services, three times, while the feed flows",
        f"{dropped} connections dropped; no service exited; {outcome}",
    )


def test_graceful_shutdown_resumes_exactly_there(stack: Stack) -> None:
    feed = Feed("TERM", members=200, lines=4000, seed=5)
    create_contract(stack, feed)
    thread = publish_in_background(stack.bootstrap, feed.items, per_second=800)
    times = []
    for name in ("claims_ingest", "settlement"):
        time.sleep(1.5)
        log = stack.state_dir / f"{name}.log"
        stops_before = log.read_text().count('"service_stopped"')
        started = time.monotonic()
        stack.services[name].send_signal(signal.SIGTERM)
        code = stack.services[name].wait(30)
        took = time.monotonic() - started
        # uvicorn re-raises the signal it handled once shutdown is done, so the exit status is -15 (or 0).
        assert code in (0, -signal.SIGTERM), f"{name} exited with {code}"
        assert log.read_text().count('"service_stopped"') == stops_before + 1, "no orderly stop in the log"
        assert took < stack.settings.shutdown_timeout_s + 10
        times.append(f"{name} stopped in order in {took:.1f} s")
        stack.restart(name)
    outcome = settled_after(stack, feed, thread)
    record(
        "graceful shutdown (SIGTERM) and restart",
        "SIGTERM to claims_ingest, then settlement, mid-stream; each restarted",
        f"{'; '.join(times)}; {outcome}",
    )


def test_broker_kill_9_mid_load_keeps_its_log_and_loses_nothing(stack: Stack) -> None:
    """A crash of the broker with its log kept: acknowledged records are in it, producers retry what was not
    acknowledged (idempotently), consumers resume from their committed offsets. Nobody re-sends anything by hand."""
    feed = Feed("CRASH", members=250, lines=5000, seed=12)
    create_contract(stack, feed)
    thread = publish_in_background(stack.bootstrap, feed.items, per_second=1500)
    time.sleep(1.5)
    assert stack.broker is not None
    stopped = timed(lambda: stack.restart_broker())  # kill -9, then the same node on its log
    outcome = settled_after(stack, feed, thread)
    record(
        "broker kill -9 mid-load (log kept)",
        "5,000 lines at 1,500/s; the broker killed with SIGKILL at 1.5 s and started again on its log and ports",
        f"back in {stopped:.1f} s; nothing re-sent by hand; {outcome}",
    )


def test_a_consumer_groups_offsets_deleted_are_read_again_and_counted_once(stack: Stack) -> None:
    """settlement's committed offsets gone (an operator's mistake, or offsets.retention passing): it reads every
    spend batch from the start again, and the dedupe by event id keeps each cent once."""
    from confluent_kafka.admin import AdminClient

    feed = Feed("OFFSETS", members=200, lines=3000, seed=14)
    create_contract(stack, feed)
    publish(stack.bootstrap, feed.items)
    wait_for_total(stack, feed)
    stack.services["settlement"].send_signal(signal.SIGKILL)
    stack.services["settlement"].wait()
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    groups = ["settlement.batches", "settlement.cold"]
    deadline = time.monotonic() + 60
    while True:  # the killed member leaves its groups after the session timeout; only an empty group is deleted
        results = admin.delete_consumer_groups(groups, request_timeout=10)
        failed = [g for g, f in results.items() if f.exception() is not None]
        if not failed:
            break
        assert time.monotonic() < deadline, f"groups not deleted: {failed}"
        groups = failed
        time.sleep(1)
    stack.restart("settlement")
    caught_up = wait_for_total(stack, feed)
    observed = invariant(stack, feed)
    record(
        "a consumer group's offsets deleted",
        "3,000 lines settled; settlement killed, its groups (settlement.batches, settlement.cold) deleted, settlement started",
        f"re-read spend.v2 from the start; settled again in {caught_up:.1f} s; not doubled: {observed}",
    )


def test_broker_restart_loses_everything_and_the_feed_is_sent_again(stack: Stack) -> None:
    feed = Feed("BROKER", members=200, lines=3000, seed=6)
    create_contract(stack, feed)
    publish(stack.bootstrap, feed.items[:1500])
    # A deleted log loses what the broker had acknowledged. Spend still on its way from claims_ingest to settlement
    # at that moment would be lost with it (a replicated Kafka keeps acknowledged writes), so the log goes once
    # the first half has settled: the fault under test is losing topics, data and offsets.
    wait_for_total(stack, feed, seconds=120, total=feed.total_of(1500))
    stack.restart_broker(wipe=True)  # its log deleted: topics, messages and committed offsets are gone
    started = time.monotonic()
    publish(stack.bootstrap, feed.items)  # the payer sends its feed again
    caught_up = wait_for_total(stack, feed, seconds=180)
    observed = invariant(stack, feed)
    assert all(p.poll() is None for p in stack.services.values())
    record(
        "broker restart with its log deleted",
        "half the feed (settled), then the broker killed, its log deleted, started on its ports; the whole feed published again",
        f"services reconnected and re-created topics; settled {time.monotonic() - started:.1f} s after the re-publish"
        f" ({caught_up:.1f} s wait); not doubled: {observed}",
    )


def test_settlement_then_the_broker_killed_mid_load_loses_nothing(stack: Stack) -> None:
    """The probe a user ran: a load under way, settlement killed, then the broker with its log deleted (what
    claims_ingest had handed over and settlement had not read is gone), both started again and the same file
    loaded again. The lines count as seen on the re-load; their spend comes back because claims_ingest re-sends
    what settlement never confirmed."""
    feed = Feed("LOST", members=300, lines=6000, seed=8)
    create_contract(stack, feed)
    thread = publish_in_background(stack.bootstrap, feed.items, per_second=2500)
    time.sleep(1.5)
    stack.services["settlement"].send_signal(signal.SIGKILL)
    stack.services["settlement"].wait()
    time.sleep(0.5)  # claims_ingest goes on storing lines and sending their spend, which nobody reads
    stack.restart_broker(wipe=True)
    lines_before = asyncio.run(_count_lines(stack.database_url))
    stack.restart("settlement")
    thread.join(120)
    started = time.monotonic()
    publish(stack.bootstrap, feed.items)  # the user loads the same file again
    caught_up = wait_for_total(stack, feed, seconds=180)
    observed = invariant(stack, feed)
    record(
        "settlement killed, then the broker, mid-load (its log deleted)",
        f"6,000 lines at 2,500/s; settlement kill -9 at 1.5 s, broker restarted empty 0.5 s later ({lines_before} lines"
        " stored by then); settlement started again; the same file published again",
        f"unconfirmed spend re-sent by claims_ingest; settled {time.monotonic() - started:.1f} s after the re-load"
        f" ({caught_up:.1f} s wait); {observed}",
    )


def test_attribution_lost_with_the_broker_is_sent_again(stack: Stack) -> None:
    """A new contract's events on their way when the broker loses its storage: contracts re-sends the attribution
    claims_ingest never confirmed, and sends the contract's state again (settlement never saw it), so the
    members' claims are attributed and settled all the same."""
    feed = Feed("ROSTER", members=150, lines=1500, seed=10)
    for name in ("claims_ingest", "settlement"):  # nobody reads attribution.v1 or contracts.v1 for now
        stack.services[name].send_signal(signal.SIGKILL)
        stack.services[name].wait()
    create_contract(stack, feed)
    time.sleep(1.0)  # the relay has handed the contract and its 150 attribution events to the broker
    stack.restart_broker(wipe=True)  # ... which loses its log, and them
    stack.restart("claims_ingest")
    stack.restart("settlement")
    started = time.monotonic()
    publish(stack.bootstrap, feed.items)
    caught_up = wait_for_total(stack, feed, seconds=120)
    observed = invariant(stack, feed)
    pending = cli_json(stack, "reconcile", "--json")
    assert pending == [], pending
    record(
        "a new contract's events lost with the broker",
        "claims_ingest and settlement down; a 150-member contract created (its state and attribution relayed), then"
        " the broker restarted empty and both started again; 1,500 claim lines published",
        "contracts re-sent the unconfirmed attribution and its current states;"
        f" settled {time.monotonic() - started:.1f} s after the feed"
        f" ({caught_up:.1f} s wait); `acoflow reconcile` shows nothing unconfirmed; {observed}",
    )


def cli_json(stack: Stack, *args: str) -> Any:
    env = {**os.environ, "ACOFLOW_STATE_DIR": str(stack.state_dir)}
    done = subprocess.run([sys.executable, "-m", "acoflow.cli", *args], env=env, capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout)


def _event(event_type: str, payload: dict[str, object]) -> bytes:
    return json.dumps(
        {"event_id": str(uuid.uuid4()), "event_type": event_type, "schema_version": 1,
         "occurred_at": "2025-06-01T00:00:00+00:00", "producer": "attacker", "payload": payload}
    ).encode()  # fmt: skip


async def _count_lines(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM claims_ingest.claim_lines WHERE member_id LIKE 'LOST-%'"))
    finally:
        await conn.close()


def test_poison_and_hostile_input_is_rejected_and_the_partition_flows(stack: Stack) -> None:
    feed = Feed("POISON", members=20, lines=400, seed=7)
    create_contract(stack, feed)
    key = f"{feed.contract}-M0000"  # the same key as valid lines: the same partition must keep flowing
    good = json.loads(feed.items[0][2])

    def variant(**payload: object) -> bytes:
        env = {**good, "event_id": str(uuid.uuid4()), "payload": {**good["payload"], **payload}}
        return json.dumps(env).encode()

    poison = [
        b"{not json",
        b"\xff\xfe\x00garbage",
        json.dumps({**good, "event_id": str(uuid.uuid4()), "schema_version": 99}).encode(),
        json.dumps({**good, "event_id": str(uuid.uuid4()), "payload": {"claim_id": "X"}}).encode(),
        variant(unexpected_field=1),
        variant(paid_amount="NaN"),
        variant(paid_amount="Infinity"),
        variant(paid_amount="1e12"),
        variant(from_date="1800-01-01", thru_date="1800-01-01"),
        variant(paid_date="2999-01-01"),
        variant(claim_type="spaceship"),
        variant(source="a\u0000b"),  # valid JSON that PostgreSQL cannot store
        variant(version_group="g\u0007"),
        # Over the envelope's 1,000,000 bytes, under the broker's message.max.bytes (1,048,588), which refuses more.
        b'{"event_id": "' + str(uuid.uuid4()).encode() + b'", "pad": "' + b"x" * 1_020_000 + b'"}',
    ]
    # A contract that cannot settle, as an event from before contracts refused it (an ESRD member, a benchmark for
    # aged/non-dual only): its position says so, and every other contract's goes on.
    unsettleable = {
        "event_id": str(uuid.uuid4()), "event_type": "contract.changed", "schema_version": 1,
        "occurred_at": good["occurred_at"], "producer": "contracts",
        "payload": {
            "contract_id": "UNSETTLEABLE", "version": 1, "name": "u", "payer": "CMS",
            "terms": feed.contract_body()["terms"], "changed_by": "old", "changed_at": good["occurred_at"],
            "roster": {"members": {"esrd": 1}, "member_months": {f"2025-{m:02d}": {"esrd": 1} for m in range(1, 13)}},
        },
    }  # fmt: skip
    items = feed.items[:200] + [("claims.submitted.v1", key, p) for p in poison] + feed.items[200:]
    keys = EventKeys.from_settings(Settings(event_keys=stack.event_keys))
    assert keys is not None
    publish(stack.bootstrap, [("contracts.v1", "UNSETTLEABLE", json.dumps(unsettleable).encode())], sign=keys.sign)
    # Forged internal events, published straight to the broker: an admin key of the attacker's choosing, money
    # for the contract, new terms. Unsigned, each is refused to deadletter.v1 and changes nothing.
    forged_key = "acf_forged_" + "x" * 40
    forged = [
        ("keys.v1", "evil", _event("api_key.changed", {"key_id": "evil", "name": "evil", "role": "admin",
                                                        "key_hash": hashlib.sha256(forged_key.encode()).hexdigest()})),
        ("spend.v2", "POISON", _event("spend.batch", {"deltas": [{
            "contract_id": "POISON", "member_id": "POISON-M0000", "line_key": "forged", "enrollment_type": "aged_nondual",
            "claim_type": "professional", "service_month": "2025-03-01", "paid_date": "2025-03-20", "amount": "1000000"}]})),
        ("contracts.v1", "POISON", _event("contract.changed",
                                          {**unsettleable["payload"], "contract_id": "POISON", "version": 99})),
    ]  # fmt: skip
    publish(stack.bootstrap, forged)
    publish(stack.bootstrap, items)
    wait_for_total(stack, feed)
    observed = invariant(stack, feed)
    position = httpx.get(stack.url("settlement") + "/positions/UNSETTLEABLE", headers=auth(stack), timeout=10).json()
    assert position["gate"] == "cannot_settle" and "esrd" in position["explanation"][-1]
    refusals = {
        ("claims_ingest", "keys.v1"), ("settlement", "keys.v1"), ("notifications", "keys.v1"),
        ("settlement", "spend.v2"), ("settlement", "contracts.v1"),
    }  # fmt: skip
    for name, topic in refusals:
        metrics = httpx.get(stack.url(name) + "/metrics", timeout=10).text
        assert f'acoflow_events_rejected_total{{code="signature",service="{name}",topic="{topic}"}}' in metrics or (
            f'acoflow_events_rejected_total{{service="{name}",topic="{topic}",code="signature"}}' in metrics
        ), (name, topic)
    assert settled_total(stack, feed.contract) == feed.total  # the forged money changed nothing
    for name in ("claims_ingest", "settlement", "notifications"):
        probe = httpx.get(stack.url(name) + "/unconfirmed", headers={"Authorization": f"Bearer {forged_key}"}, timeout=10)
        assert probe.status_code == 401, (name, probe.status_code)

    def rejects() -> list[dict[str, object]]:
        r = httpx.get(stack.url("claims_ingest") + "/rejects", params={"limit": 1000}, headers=auth(stack), timeout=10)
        return list(r.json())

    deadline = time.monotonic() + 30
    while len(rejects()) < len(poison) and time.monotonic() < deadline:
        time.sleep(0.5)
    found = rejects()
    assert len(found) == len(poison), [r["reasons"] for r in found]
    codes = sorted({str(r["reasons"][0]["code"]) for r in found})  # type: ignore[index]
    assert all(p.poll() is None for p in stack.services.values())
    record(
        "poison and hostile input",
        f"{len(poison)} bad messages on a busy key: malformed JSON, non-UTF-8, unknown schema version, missing and extra"
        " fields, NaN/Infinity/1e12 amounts, dates in 1800 and 2999, an unknown claim type, a NUL and a control"
        " character in text fields, a 1.1 MB message; a contract event whose roster its benchmark does not price; and"
        " forged (unsigned) keys.v1, spend.v2 and contracts.v1 events published straight to the broker",
        f"all {len(found)} on claims.rejected.v1 with reasons ({', '.join(codes)});"
        " the contract got a cannot_settle position naming why; the forged events were refused (code signature) and the"
        f" forged admin key answers 401; the valid lines around them settled: {observed}",
    )
