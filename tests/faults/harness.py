"""What the fault tests share: a stack on a fresh database, a claims feed flowing in the background, the
money invariant, and the table of what each fault showed (docs/faults.md)."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx

from acoflow.stack import Stack, private_settings
from shared.broker import make_producer, publish_all
from shared.settings import Settings

RESULTS = Path(__file__).parent / ".results.jsonl"
DOC = Path(__file__).resolve().parents[2] / "docs" / "faults.md"


def start_stack(tmp_path: Path, database: str | None) -> Stack:
    """A stack on `database`, or (None) on an embedded PostgreSQL of its own, as `acoflow up` runs."""
    settings = private_settings(
        tmp_path / "state",
        database_url=database,
        shutdown_timeout_s=10,
        topic_check_interval_s=1,
        resend_after_s=3,  # spend lost on the way is re-sent after 3 s rather than 30
        republish_interval_s=5,  # full states (contracts, positions) sent again every 5 s rather than 300
    )
    stack = Stack(settings, settings.state_dir)
    stack.start()
    return stack


@dataclass
class Feed:
    """A contract with `members` members and `lines` claim lines for them, with their exact total."""

    contract: str
    members: int
    lines: int
    seed: int = 1
    items: list[tuple[str, str, bytes]] = field(default_factory=list)
    total: Decimal = Decimal(0)
    cents: list[int] = field(default_factory=list)  # each line's signed amount

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        for n in range(self.lines):
            member = f"{self.contract}-M{rng.randrange(self.members):04d}"
            served = date(2025, 1, 1) + timedelta(days=rng.randrange(300))
            amount = rng.randrange(1_000, 500_000)
            cancel = rng.randrange(40) == 0
            self.cents.append(-amount if cancel else amount)
            payload = {
                "source": "faults", "claim_id": f"{self.contract}-C{n:06d}", "line_number": 1, "member_id": member,
                "payer": "CMS", "claim_type": "professional", "adjustment_type": "cancellation" if cancel else "original",
                "from_date": served.isoformat(), "thru_date": served.isoformat(),
                "paid_date": (served + timedelta(days=15)).isoformat(), "paid_amount": f"{amount // 100}.{amount % 100:02d}",
            }  # fmt: skip
            envelope = {
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.contract}/{n}")), "event_type": "claim_line.submitted",
                "schema_version": 1, "occurred_at": datetime.now(UTC).isoformat(), "producer": "faults", "payload": payload,
            }  # fmt: skip
            self.items.append(("claims.submitted.v1", member, json.dumps(envelope).encode()))
        self.total = self.total_of(self.lines)

    def total_of(self, first: int) -> Decimal:
        """The exact total of the first `first` lines."""
        return Decimal(sum(self.cents[:first])) / 100

    def contract_body(self) -> dict[str, object]:
        return {
            "contract_id": self.contract, "name": self.contract, "payer": "CMS",
            "terms": {"program": "MSSP", "track": "BE", "performance_year": 2025, "period_start": "2025-01-01",
                      "period_end": "2025-12-31", "benchmark_per_capita": {"aged_nondual": "12000.00"}, "msr": "0.02",
                      "mlr": "0.02"},
            "roster": [{"member_id": f"{self.contract}-M{m:04d}"} for m in range(self.members)],
        }  # fmt: skip


def auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.api_key}"}


def create_contract(stack: Stack, feed: Feed) -> None:
    r = httpx.post(stack.url("contracts") + "/contracts", json=feed.contract_body(), headers=auth(stack), timeout=60)
    assert r.status_code == 201, r.text


def publish(
    bootstrap: str,
    items: list[tuple[str, str, bytes]],
    per_second: int | None = None,
    sign: Callable[[bytes], list[tuple[str, bytes]]] | None = None,
    settings: Settings | None = None,
) -> None:
    """Publish items; `sign` adds signature headers (what a service would send); `settings` say who publishes."""

    async def run() -> None:
        producer = make_producer(bootstrap, "faults-feed", settings)
        await producer.start()
        try:
            step = 100
            started = time.monotonic()
            for i in range(0, len(items), step):
                await publish_all(producer, items[i : i + step], sign)
                if per_second:
                    wait = started + (i + step) / per_second - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
        finally:
            await producer.stop()

    asyncio.run(run())


def publish_in_background(bootstrap: str, items: list[tuple[str, str, bytes]], per_second: int) -> threading.Thread:
    """The feed keeps flowing while the test breaks things; a publish that fails (the broker is down) is retried."""

    def run() -> None:
        for _ in range(30):
            try:
                publish(bootstrap, items, per_second)
                return
            except Exception:
                time.sleep(1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


async def _sums(dsn: str, contract: str) -> tuple[Decimal, Decimal, Decimal, bool]:
    conn = await asyncpg.connect(dsn)
    try:
        settled = await conn.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM settlement.member_spend WHERE contract_id = $1", contract
        )
        emitted = await conn.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM claims_ingest.emitted WHERE contract_id = $1 AND active", contract
        )
        lines = await conn.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM claims_ingest.claim_lines WHERE member_id LIKE $1 AND NOT superseded",
            contract + "-M%",
        )
        # The member aggregates settlement keeps as spend arrives equal those of its member rows.
        stats_hold = await conn.fetchval(
            "SELECT (SELECT (members, total, sum_of_squares) FROM settlement.member_stats WHERE contract_id = $1)"
            " IS NOT DISTINCT FROM (SELECT (count(*), sum(amount), sum(amount * amount)) FROM settlement.member_spend"
            " WHERE contract_id = $1)",
            contract,
        )
        return settled, emitted, lines, stats_hold
    finally:
        await conn.close()


def settled_total(stack: Stack, contract: str) -> Decimal | None:
    try:
        r = httpx.get(stack.url("settlement") + f"/positions/{contract}", headers=auth(stack), timeout=5)
    except httpx.HTTPError:
        return None
    return Decimal(r.json()["paid_to_date"]) if r.status_code == 200 else None


def wait_for_total(stack: Stack, feed: Feed, seconds: float = 120, total: Decimal | None = None) -> float:
    """Seconds until the contract's settled spend equals the feed's total (or `total`); fails if it never does."""
    expected = feed.total if total is None else total
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        if settled_total(stack, feed.contract) == expected:
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"{feed.contract}: settled {settled_total(stack, feed.contract)} != {expected}")


def settled_after(stack: Stack, feed: Feed, thread: threading.Thread) -> str:
    """Once the background feed is sent: how long settlement took to catch up, and the invariant it holds."""
    thread.join(120)
    caught_up = wait_for_total(stack, feed)
    return f"caught up {caught_up:.1f} s after the feed; {invariant(stack, feed)}"


def invariant(stack: Stack, feed: Feed) -> str:
    """Every cent once: settlement's spend = claims_ingest's attributed spend = the signed sum of the
    member's claim lines = the feed's total."""
    settled, emitted, lines, stats_hold = asyncio.run(_sums(stack.database_url, feed.contract))
    assert settled == emitted == lines == feed.total, (settled, emitted, lines, feed.total)
    assert stats_hold
    time.sleep(1.0)  # a late duplicate would move the position now
    assert settled_total(stack, feed.contract) == feed.total
    return f"settled {settled:,.2f} = attributed {emitted:,.2f} = claim lines {lines:,.2f} = feed {feed.total:,.2f}"


def record(fault: str, action: str, observed: str) -> None:
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"fault": fault, "action": action, "observed": observed}) + "\n")


def write_doc() -> None:
    """docs/faults.md from this run's results, in test order."""
    if not RESULTS.exists():
        return
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    out = [
        "# Faults tested",
        "",
        "Written by `tests/faults` (`make test` runs them) from what each test observed on its last run; the stack",
        "is the embedded one (one Kafka KRaft node, PostgreSQL, the four services as processes) with a claims feed flowing.",
        "",
        "| fault | what the test did | what it showed |",
        "|---|---|---|",
    ]
    out += [f"| {r['fault']} | {r['action']} | {r['observed']} |" for r in rows]
    DOC.write_text("\n".join(out) + "\n", encoding="utf-8")
    RESULTS.unlink()


def timed(fn: Callable[[], object]) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started
