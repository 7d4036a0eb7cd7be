"""`make bench`: the whole pipeline against the raw broker, in one run, on the embedded stack.

Prints, after the machine, the command and the commit: raw aiokafka produce and consume rates; end-to-end lines/s from
claims.submitted.v1 to the last settlement.v1 update (1,000 contracts, 100,000 members); submit-to-settlement
latency p50/p99 at a steady 1,000 lines/s, with each consumer's messages per handler call meanwhile, and before
it the broker's CPU for the same feed into a topic nobody reads (the bench's own traffic); CCLF
parse rate; settle-puf rows/s; each service's peak RSS; a core-speed check from before and after the run
(shared VMs swing); `steady_cost_ratio=` the stack's CPU seconds per line at the steady rate over the same in
bulk (services, broker and PostgreSQL; not this script); `idle_cores=` the stack's CPU over 30 s with nothing
arriving; `trickle_ms_p50=` and `trickle_ms_max=` for single lines each submitted after a few quiet seconds (a
payer's trickle: every line finds the stack idle); `load_ratio=` `acoflow load` of a generated 200,000-line CCLF
delivery (parse and publish) in lines/s over raw produce msgs/s, with the CPU each part used meanwhile; and last,
`ratio=<end-to-end lines/s / raw produce msgs/s>`.

Run: python -m bench.pipeline [--lines 200000] [--contracts 1000] [--members 100000] [--latency-seconds 20]
     [--trickle-lines 10] [--trickle-gap-s 3]
     [--profile DIR]  (py-spy samples each service: DIR/end_to_end/<service>.txt and DIR/latency/<service>.txt,
                       collapsed stacks)"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from acoflow.kafka_node import kafka_version
from acoflow.stack import Stack, private_settings
from bench import cclf_parse
from bench.machine import core_speed_ms, header
from shared.broker import make_producer, publish_all
from shared.envelope import raw_envelope
from shared.events import CLAIM_SUBMITTED as CLAIM_SUBMITTED_EVENT
from shared.topics import CLAIMS_SUBMITTED

PY_START = date(2025, 1, 1)
CHUNK = 5000


def line_envelope(n: int, member: int, rng: random.Random, tag: str) -> tuple[str, bytes]:
    served = PY_START + timedelta(days=rng.randrange(300))
    cents = rng.randrange(2_000, 90_000)
    payload = {
        "source": "bench", "claim_id": f"{tag}{n:09d}", "line_number": 1, "member_id": f"B{member:06d}", "payer": "CMS",
        "claim_type": "professional", "from_date": served.isoformat(), "thru_date": served.isoformat(),
        "paid_date": (served + timedelta(days=20)).isoformat(), "paid_amount": f"{cents // 100}.{cents % 100:02d}",
    }  # fmt: skip
    return str(payload["member_id"]), raw_envelope(CLAIM_SUBMITTED_EVENT, payload, "bench", event_id=uuid.uuid4())


async def raw_topic(bootstrap: str, partitions: int) -> str:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return topic


async def send_each(producer: AIOKafkaProducer, items: list[tuple[str, str, bytes]]) -> None:
    """aiokafka's own way: send() a message at a time, then wait for every acknowledgement (the raw baseline)."""
    futures = [await producer.send(topic, value=value, key=key.encode()) for topic, key, value in items]
    await asyncio.gather(*futures)


async def produce_rate(bootstrap: str, count: int, sample: bytes, partitions: int, publish: Any) -> tuple[str, float]:
    topic = await raw_topic(bootstrap, partitions)
    producer = make_producer(bootstrap, "bench-raw")
    await producer.start()
    started = time.perf_counter()
    try:
        for i in range(0, count, CHUNK):
            await publish(producer, [(topic, f"k{j % 100_000}", sample) for j in range(i, min(count, i + CHUNK))])
    finally:
        await producer.stop()
    return topic, count / (time.perf_counter() - started)


def raw_partitions(stack: Stack) -> int:
    """The raw baseline's topic has the partitions of the topic the claims arrive on."""
    return stack.partitions or CLAIMS_SUBMITTED.partitions


async def raw_baseline(bootstrap: str, count: int, sample: bytes, partitions: int) -> tuple[float, float]:
    """(produce, consume) msgs/s with plain aiokafka: send() per message, getmany() in batches."""
    topic, produce = await produce_rate(bootstrap, count, sample, partitions, send_each)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}.g", auto_offset_reset="earliest",
                                enable_auto_commit=False, max_poll_records=5000)  # fmt: skip
    await consumer.start()
    got = 0
    started = time.perf_counter()
    try:
        while got < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            got += sum(len(v) for v in batch.values())
    finally:
        await consumer.stop()
    return produce, count / (time.perf_counter() - started)


async def create_contracts(stack: Stack, contracts: int, per: int) -> None:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    async with httpx.AsyncClient(base_url=stack.url("contracts"), headers=headers, timeout=120) as http:
        gate = asyncio.Semaphore(8)

        async def one(c: int) -> None:
            body = {
                "contract_id": f"BENCH-{c:04d}", "name": f"Bench ACO {c}", "payer": "CMS",
                "terms": {"program": "MSSP", "track": "BE", "performance_year": 2025, "period_start": "2025-01-01",
                          "period_end": "2025-12-31", "benchmark_per_capita": {"aged_nondual": "12000.00"}, "msr": "0.02",
                          "mlr": "0.02"},
                "roster": [{"member_id": f"B{m:06d}"} for m in range(c * per, (c + 1) * per)],
            }  # fmt: skip
            async with gate:
                r = await http.post("/contracts", json=body)
                if r.status_code not in (201, 409):
                    raise RuntimeError(f"contract {c}: HTTP {r.status_code} {r.text[:200]}")

        await asyncio.gather(*(one(c) for c in range(contracts)))


async def wait_assigned(stack: Stack, members: int, seconds: float = 900) -> None:
    import asyncpg

    conn = await asyncpg.connect(stack.database_url)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await conn.fetchval("SELECT count(*) FROM claims_ingest.assignments") >= members:
                return
            await asyncio.sleep(0.5)
        raise RuntimeError("rosters were not applied in time")
    finally:
        await conn.close()


class Watcher:
    """Follows settlement.v1: the highest lines_applied seen per contract, and when each was first seen."""

    def __init__(self, bootstrap: str, start: str = "earliest") -> None:
        self.consumer = AIOKafkaConsumer(
            "settlement.v1", bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex[:6]}", fetch_max_wait_ms=20,
            auto_offset_reset=start, enable_auto_commit=False,
        )  # fmt: skip
        self.applied: dict[str, int] = defaultdict(int)
        self.positions = 0  # settlement.v1 events seen
        self.listeners: list[Any] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=5000)
            now = time.perf_counter()
            for records in batch.values():
                self.positions += len(records)
                for r in records:
                    p = json.loads(r.value)["payload"]
                    if p["lines_applied"] > self.applied[p["contract_id"]]:
                        self.applied[p["contract_id"]] = p["lines_applied"]
                        for listener in self.listeners:
                            listener(p["contract_id"], p["lines_applied"], now)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        await self.consumer.stop()


async def until(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


def end_to_end_feed(lines: int, contracts: int, per: int) -> tuple[list[tuple[str, str, bytes]], dict[str, int]]:
    """The end-to-end phase's claim lines, encoded, and how many each contract gets. Built before the phase's
    CPU is read, so generating them is not counted as the stack's or the feed's work."""
    rng = random.Random(7)
    expected: dict[str, int] = defaultdict(int)
    items: list[tuple[str, str, bytes]] = []
    for n in range(lines):
        member = rng.randrange(contracts * per)
        expected[f"BENCH-{member // per:04d}"] += 1
        key, value = line_envelope(n, member, rng, "T")
        items.append(("claims.submitted.v1", key, value))
    return items, expected


async def end_to_end(stack: Stack, watcher: Watcher, items: list[tuple[str, str, bytes]], expected: dict[str, int]) -> float:
    lines = len(items)
    base = dict(watcher.applied)
    positions_before = watcher.positions
    producer = make_producer(stack.bootstrap, "bench-feed")
    await producer.start()
    started = time.perf_counter()
    try:
        for i in range(0, lines, CHUNK):
            await publish_all(producer, items[i : i + CHUNK])
    finally:
        await producer.stop()
    published = time.perf_counter() - started
    done = await until(lambda: all(watcher.applied[c] - base.get(c, 0) >= k for c, k in expected.items()), 1800)
    if not done:
        raise RuntimeError("settlement did not catch up with the feed")
    elapsed = time.perf_counter() - started
    positions = watcher.positions - positions_before
    print(f"  (published {lines:,} lines in {published:.1f} s; settled in {elapsed:.1f} s; {positions:,} positions published)")
    return lines / elapsed


async def steady_feed(
    bootstrap: str, topic: str, rate: int, seconds: int, contracts: int, per: int, on_line: Any = None, tag: str = "L"
) -> float:
    """Publish `rate` claim lines a second for `seconds` to `topic`, 10 ms of them at a time (a payer's steady
    feed), calling on_line(contract, submit time) for each; returns the lines/s actually submitted (below `rate`
    when the machine is saturated)."""
    rng = random.Random(11)
    producer = make_producer(bootstrap, "bench-steady")
    await producer.start()
    total = rate * seconds
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    started = time.perf_counter()
    try:
        for n in range(0, total, per_tick):
            batch = []
            now = time.perf_counter()
            for j in range(n, min(total, n + per_tick)):
                member = rng.randrange(contracts * per)
                if on_line is not None:
                    on_line(f"BENCH-{member // per:04d}", now)
                key, value = line_envelope(j, member, rng, tag)
                batch.append((topic, key, value))
            await publish_all(producer, batch)
            wait = started + (n + per_tick) / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
    finally:
        await producer.stop()
    return total / (time.perf_counter() - started)


async def feed_alone(stack: Stack, rate: int, seconds: int, contracts: int, per: int) -> tuple[float, float, float]:
    """The steady feed into a topic nobody reads, the settlement.v1 watcher running: (broker CPU s, the rest of the
    stack's CPU s, seconds). What the bench's own traffic costs the broker, beside the stack's polling meanwhile."""
    topic = await raw_topic(stack.bootstrap, raw_partitions(stack))
    before, started = cpu_seconds(stack), time.perf_counter()
    await steady_feed(stack.bootstrap, topic, rate, seconds, contracts, per)
    after, took = cpu_seconds(stack), time.perf_counter() - started
    broker = after.get("broker", 0.0) - before.get("broker", 0.0)
    return broker, stack_cpu(before, after) - broker, took


async def latency(
    stack: Stack,
    watcher: Watcher,
    rate: int,
    seconds: int,
    contracts: int,
    per: int,
    log: Path | None = None,
    tag: str = "L",
) -> tuple[float, float, int, float]:
    """(p50 ms, p99 ms, lines measured, lines/s actually submitted: below `rate` when the machine is saturated).
    Each call's lines need a `tag` of their own: claim ids repeated from an earlier call are duplicates."""
    pending: dict[str, list[float]] = defaultdict(list)  # per contract: submit times, in order
    base = dict(watcher.applied)
    settled: dict[str, int] = defaultdict(int)
    latencies: list[float] = []
    submitted: list[float] = []  # seconds into the phase each measured line was submitted

    def on_position(contract: str, applied: int, now: float) -> None:
        reached = applied - base.get(contract, 0)
        times = pending.get(contract, [])
        while settled[contract] < min(reached, len(times)):
            latencies.append(now - times[settled[contract]])
            submitted.append(times[settled[contract]] - started)
            settled[contract] += 1

    def on_line(contract: str, now: float) -> None:
        pending[contract].append(now)

    watcher.listeners.append(on_position)
    total = rate * seconds
    started = time.perf_counter()
    submit_rate = await steady_feed(stack.bootstrap, "claims.submitted.v1", rate, seconds, contracts, per, on_line, tag)
    await until(lambda: len(latencies) >= total, 120)
    watcher.listeners.remove(on_position)
    if log is not None:  # one line per measured claim line: when it was submitted, and its latency
        text = "".join(f"{t:.3f} {x * 1000:.1f}\n" for t, x in zip(submitted, latencies, strict=True))
        await asyncio.to_thread(log.write_text, text)
    latencies.sort()
    if not latencies:
        return float("nan"), float("nan"), 0, submit_rate
    return (
        latencies[len(latencies) // 2] * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        len(latencies),
        submit_rate,
    )


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time used so far by each part of the stack (PostgreSQL per backend process)."""
    import psutil

    out: dict[str, float] = {}
    for name, proc in stack.services.items():
        t = psutil.Process(proc.pid).cpu_times()
        out[name] = t.user + t.system
    if stack.broker is not None and stack.broker.proc is not None:
        t = psutil.Process(stack.broker.proc.pid).cpu_times()
        out["broker"] = t.user + t.system
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "postgres":
            try:
                t = proc.cpu_times()
                out[f"postgres/{proc.pid}"] = t.user + t.system
            except psutil.Error:
                pass
    me = psutil.Process().cpu_times()
    out["bench"] = me.user + me.system  # this script: the feed's producer and the settlement.v1 watcher
    t = psutil.cpu_times()
    out["all_cpus_busy"] = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    # Time the hypervisor gave to other guests while ours wanted the CPU: on a shared VM, runs differ by it.
    out["steal"] = getattr(t, "steal", 0.0)
    return out


NOT_STACK = ("bench", "all_cpus_busy", "steal")


def stack_cpu(before: dict[str, float], after: dict[str, float]) -> float:
    """CPU seconds the stack (services, broker, PostgreSQL) used between two cpu_seconds() readings."""
    return sum(v - before.get(k, 0.0) for k, v in after.items() if k.split("/")[0] not in NOT_STACK)


async def idle(stack: Stack, seconds: float = 30.0) -> tuple[float, str]:
    """The stack's CPU use, in cores, over `seconds` with nothing arriving (after what came before settled),
    and each part's CPU seconds."""
    await asyncio.sleep(5)
    before = cpu_seconds(stack)
    await asyncio.sleep(seconds)
    after = cpu_seconds(stack)
    return stack_cpu(before, after) / seconds, cpu_used(before, after)


async def trickle(stack: Stack, lines: int, gap_s: float, contracts: int, per: int) -> list[float]:
    """Latency in ms of single claim lines, each submitted after `gap_s` with nothing arriving, until the position
    that counts it: a payer's trickle, where every line finds the stack idle."""
    watcher = Watcher(stack.bootstrap, start="latest")
    await watcher.start()
    producer = make_producer(stack.bootstrap, "bench-trickle")
    await producer.start()
    rng = random.Random(13)
    out: list[float] = []
    try:
        # Joined at "latest": positions the load left in flight may still come first; let them pass.
        await asyncio.sleep(gap_s)
        for n in range(lines):
            member = rng.randrange(contracts * per)
            contract = f"BENCH-{member // per:04d}"
            seen = watcher.applied[contract]
            key, value = line_envelope(n, member, rng, "K")
            started = time.perf_counter()
            await publish_all(producer, [("claims.submitted.v1", key, value)])
            if not await until(lambda c=contract, k=seen: watcher.applied[c] > k, 60):
                raise RuntimeError("a trickle line was not settled within 60 s")
            out.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(gap_s)
    finally:
        await producer.stop()
        await watcher.stop()
    return out


async def load_rate(stack: Stack, lines: int) -> tuple[float, str]:
    """`acoflow load` of a generated CCLF delivery: parse and publish, lines/s; and the CPU seconds each part used
    meanwhile (the load's reading process as `load_reader`, its publishing in this script's `bench`)."""
    from rich.console import Console

    from acoflow.load import publish

    with tempfile.TemporaryDirectory() as tmp:
        paths = cclf_parse.write_feed(Path(tmp), lines)
        before, children = cpu_seconds(stack), resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        report = await publish(paths, "cclf", "CMS", stack.bootstrap, Console(quiet=True), quiet=True)
        elapsed = time.perf_counter() - started
        after, ended = cpu_seconds(stack), resource.getrusage(resource.RUSAGE_CHILDREN)
    if report.lines != lines:
        raise RuntimeError(f"the load read {report.lines} lines of {lines}")
    reader = ended.ru_utime + ended.ru_stime - children.ru_utime - children.ru_stime
    return lines / elapsed, f"{cpu_used(before, after)}  load_reader={reader:.1f}"


def cpu_used(before: dict[str, float], after: dict[str, float]) -> str:
    """CPU seconds between two cpu_seconds() readings; PostgreSQL's backends summed (one that exited in
    between is not counted, so its figure is a lower bound)."""
    used: dict[str, float] = defaultdict(float)
    for key, value in after.items():
        used[key.split("/")[0]] += value - before.get(key, 0.0)
    return "  ".join(f"{k}={v:.1f}" for k, v in used.items())


async def handler_batches(stack: Stack) -> dict[str, tuple[float, float]]:
    """Per service and consumed topic: (messages, handler calls) so far, from FastStream's Prometheus
    middleware on each service's /metrics (a batch subscriber's handler is called once a batch)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, tuple[float, float]] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for name in stack.services:
            text = (await http.get(f"{stack.url(name)}/metrics")).text
            counts: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    topic = sample.labels.get("handler", "")
                    if sample.name == "faststream_received_messages_total":
                        counts[topic][0] += sample.value
                    elif sample.name == "faststream_received_processed_messages_duration_seconds_count":
                        counts[topic][1] += sample.value
            out.update({f"{name}/{topic}": (m, b) for topic, (m, b) in counts.items()})
    return out


def batch_sizes(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> str:
    """Messages per handler call between two handler_batches() readings, for the consumers that had any."""
    parts = []
    for key, (messages, batches) in sorted(after.items()):
        messages_before, batches_before = before.get(key, (0.0, 0.0))
        m, b = messages - messages_before, batches - batches_before
        if b:
            parts.append(f"{key}={m:,.0f}/{b:,.0f}")
    return "  ".join(parts)


def start_profilers(stack: Stack, directory: Path | None) -> list[subprocess.Popen[bytes]]:
    """py-spy on every service (collapsed stacks, 100 Hz), when asked for and installed (`pip install py-spy`)."""
    if directory is None:
        return []
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy on PATH (pip install py-spy)")
    directory.mkdir(parents=True, exist_ok=True)
    command = [spy, "record", "--rate", "100", "--format", "raw", "--nonblocking"]
    return [
        subprocess.Popen(
            [*command, "--pid", str(proc.pid), "--output", str(directory / f"{name}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, proc in stack.services.items()
    ]


def stop_profilers(profilers: list[subprocess.Popen[bytes]]) -> None:
    for p in profilers:
        p.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    for p in profilers:
        p.wait(timeout=60)


def peak_rss(stack: Stack) -> dict[str, int]:
    out = {}
    for name, proc in stack.services.items():
        for row in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if row.startswith("VmHWM:"):
                out[name] = int(row.split()[1]) // 1024
    return out


def settle_puf_rate() -> float:
    from acoflow.puf import read_rows, settle_rows

    path = Path(__file__).parents[1] / "tests" / "fixtures" / "mssp_puf" / "mssp_puf_2013_2018.csv"
    rows = read_rows(path)
    started = time.perf_counter()
    results = list(settle_rows(rows))
    return len(results) / (time.perf_counter() - started)


async def run(args: argparse.Namespace) -> None:
    provenance = header()
    speed_before = core_speed_ms()
    per = args.members // args.contracts
    with tempfile.TemporaryDirectory() as tmp:
        settings = private_settings(Path(tmp) / "state")
        stack = Stack(settings, settings.state_dir)
        await asyncio.to_thread(stack.start)
        try:
            print(provenance)
            print(
                f"stack: Apache Kafka {kafka_version()} (one KRaft node, topics as shared/topics.py gives them), "
                f"PostgreSQL {'embedded' if stack.pgdata else stack.database_url}"
            )
            _, sample = line_envelope(0, 0, random.Random(1), "S")
            before = cpu_seconds(stack)
            produce, consume = await raw_baseline(stack.bootstrap, args.lines, sample, raw_partitions(stack))
            after = cpu_seconds(stack)
            print(f"raw_produce_msgs_per_s={produce:,.0f}  raw_consume_msgs_per_s={consume:,.0f}  ({args.lines:,} "
                  f"messages of {len(sample)} bytes, aiokafka, {raw_partitions(stack)} partitions)")  # fmt: skip
            print("  cpu_seconds_during_raw " + cpu_used(before, after))
            _, batched = await produce_rate(stack.bootstrap, args.lines, sample, raw_partitions(stack), publish_all)
            print(f"  (the same messages through shared.broker.publish_all, in record batches: {batched:,.0f} msgs/s; "
                  "the ratios divide by raw_produce_msgs_per_s)")  # fmt: skip
            started = time.perf_counter()
            await create_contracts(stack, args.contracts, per)
            await wait_assigned(stack, args.contracts * per)
            took = time.perf_counter() - started
            print(f"  ({args.contracts:,} contracts, {args.contracts * per:,} members set up in {took:.1f} s)")
            watcher = Watcher(stack.bootstrap)
            await watcher.start()
            try:
                items, expected = end_to_end_feed(args.lines, args.contracts, per)
                before = cpu_seconds(stack)
                profilers = start_profilers(stack, args.profile and args.profile / "end_to_end")
                e2e = await end_to_end(stack, watcher, items, expected)
                stop_profilers(profilers)
                print(f"end_to_end_lines_per_s={e2e:,.0f}  ({args.lines:,} lines, submitted -> last settlement.v1 update)")
                after = cpu_seconds(stack)
                print("  cpu_seconds_during_end_to_end " + cpu_used(before, after))
                bulk_cost = stack_cpu(before, after) / args.lines
                broker_alone, rest_alone, took = await feed_alone(stack, args.rate, args.latency_seconds, args.contracts, per)
                print(f"  (the steady feed alone, into a topic nobody reads, for {took:.1f} s: broker {broker_alone:.1f} CPU s, "
                      f"services and PostgreSQL {rest_alone:.1f}: the bench's own traffic and the stack's polling)")  # fmt: skip
                profilers = start_profilers(stack, args.profile and args.profile / "latency")
                before, positions = cpu_seconds(stack), watcher.positions
                batches_before = await handler_batches(stack)
                p50, p99, n, submitted = await latency(
                    stack, watcher, args.rate, args.latency_seconds, args.contracts, per, args.latency_log
                )
                after, positions = cpu_seconds(stack), watcher.positions - positions
                batches_after = await handler_batches(stack)
                stop_profilers(profilers)
                print(f"latency_ms_p50={p50:.0f}  latency_ms_p99={p99:.0f}  ({n:,} lines at a steady {args.rate:,} lines/s, "
                      f"submitted at {submitted:,.0f} lines/s; "
                      f"{positions:,} positions published)")  # fmt: skip
                print("  cpu_seconds_during_latency " + cpu_used(before, after))
                print("  messages/batches_during_latency " + batch_sizes(batches_before, batches_after))
                steady_cost = stack_cpu(before, after) / max(n, 1)
                print(f"steady_cost_ratio={steady_cost / bulk_cost:.2f}  (stack CPU per line: {steady_cost * 1000:.2f} ms at "
                      f"{args.rate:,} lines/s, {bulk_cost * 1000:.2f} ms in bulk)")  # fmt: skip
            finally:
                await watcher.stop()
            cores, parts = await idle(stack)  # with this script's own consumer stopped: nothing asks the stack for anything
            print(f"idle_cores={cores:.3f}  (the stack's CPU over 30 s with nothing arriving)")
            print("  cpu_seconds_during_idle " + parts)
            single = sorted(await trickle(stack, args.trickle_lines, args.trickle_gap_s, args.contracts, per))
            print(f"trickle_ms_p50={single[len(single) // 2]:.0f}  trickle_ms_max={single[-1]:.0f}  ({len(single)} single lines, "
                  f"each after {args.trickle_gap_s:.0f} s with nothing arriving, submit -> its position)")  # fmt: skip
            load, load_cpu = await load_rate(stack, args.load_lines)
            print(f"load_ratio={load / produce:.3f}  (acoflow load of {args.load_lines:,} CCLF lines, parse and publish: "
                  f"{load:,.0f} lines/s)")  # fmt: skip
            print("  cpu_seconds_during_load " + load_cpu)
            rss = peak_rss(stack)
            print("peak_rss_mb " + "  ".join(f"{k}={v}" for k, v in rss.items()))
        finally:
            await asyncio.to_thread(stack.stop)
    print(f"cclf_parse_lines_per_s={cclf_parse.measure(500_000):,.0f}  (500,000 records, one core)")
    print(f"settle_puf_rows_per_s={settle_puf_rate():,.0f}  (2,397 PUF rows)")
    print(f"core_speed_ms before={speed_before:.0f} after={core_speed_ms():.0f}  (pure-Python loop, best of 5)")
    print(f"ratio={Decimal(e2e / produce).quantize(Decimal('0.001'))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--contracts", type=int, default=1_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--latency-seconds", type=int, default=20)
    parser.add_argument("--load-lines", type=int, default=200_000)
    parser.add_argument("--trickle-lines", type=int, default=10)
    parser.add_argument("--trickle-gap-s", type=float, default=3.0)
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR")
    parser.add_argument("--latency-log", type=Path, default=None, metavar="FILE", help="each line's submit time and latency")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
