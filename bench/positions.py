"""What one settlement position costs: the position loop's pass on its own, against a real PostgreSQL.

    python -m bench.positions [--dsn URL] [--contracts 1000] [--members 100] [--lines 200]

Loads contracts with spend as the pipeline benchmark does (MSSP BASIC E, members per contract, lines per
contract over the year), then marks contracts and runs repository.publish_pending passes of several sizes,
printing positions per second, the time of one pass and the database's CPU per position (when it runs on
this machine). It isolates settlement's recompute from Kafka and
from the other services, so a change to it can be measured without the whole stack's noise."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg

from bench.machine import header
from bench.scratch import DEFAULT_DSN, scratch_pool, server_cpu, server_cpu_used
from services.settlement import repository
from services.settlement.app import MIGRATIONS
from shared.events import ContractState, RosterSummary, SpendDelta
from shared.terms import ContractTerms

TERMS = ContractTerms.model_validate(
    {"program": "MSSP", "track": "BE", "performance_year": 2025, "period_start": "2025-01-01",
     "period_end": "2025-12-31", "benchmark_per_capita": {"aged_nondual": "12000.00"}, "msr": "0.02", "mlr": "0.02"}
)  # fmt: skip


async def load(pool: asyncpg.Pool, contracts: int, members: int, lines: int) -> None:
    rng = random.Random(3)
    async with pool.acquire() as conn, conn.transaction():
        for c in range(contracts):
            cid = f"BENCH-{c:04d}"
            state = ContractState(
                contract_id=cid, version=1, name=cid, payer="CMS", terms=TERMS,
                roster=RosterSummary(members={"aged_nondual": members}), changed_by="bench", changed_at=datetime.now(UTC),
            )  # fmt: skip
            await repository.store_contract(conn, state)
            deltas = []
            for n in range(lines):
                served = date(2025, 1, 1) + timedelta(days=rng.randrange(300))
                deltas.append(
                    SpendDelta(
                        contract_id=cid, member_id=f"M{rng.randrange(members)}", line_key=f"{cid}-{n}",
                        enrollment_type="aged_nondual", claim_type="professional", service_month=served.replace(day=1),
                        paid_date=served + timedelta(days=rng.choice((10, 20, 40, 70))),
                        amount=Decimal(rng.randrange(2_000, 200_000)) / 100,
                    )
                )  # fmt: skip
            await repository.apply_spend(conn, deltas)


async def passes(pool: asyncpg.Pool, contracts: int, size: int) -> tuple[float, float, int, float | None]:
    """(positions per second, ms per pass, mean event bytes, the database's CPU us a position when it runs on
    this machine) recomputing every contract in passes of `size`."""
    ids = [f"BENCH-{c:04d}" for c in range(contracts)]
    async with pool.acquire() as conn:
        await repository.mark_pending(conn, set(ids))
    server_before = await server_cpu(pool)
    started, count = time.perf_counter(), 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            taken, _ = await repository.publish_pending(conn, size)
        if not taken:
            break
        count += 1
    elapsed = time.perf_counter() - started
    used = server_cpu_used(server_before, await server_cpu(pool))
    server = None if used is None else used * 1e6 / contracts
    async with pool.acquire() as conn:
        size_of = await conn.fetchval(f"SELECT avg(octet_length(value))::int FROM {repository.SCHEMA}.outbox")
        await conn.execute(f"DELETE FROM {repository.SCHEMA}.outbox")
    return contracts / elapsed, elapsed * 1000 / max(count, 1), size_of, server


async def run(args: argparse.Namespace) -> None:
    async with scratch_pool(args.dsn, repository.SCHEMA, MIGRATIONS, repository.DB_SESSION) as pool:
        await load(pool, args.contracts, args.members, args.lines)
        print(header())
        print(f"  ({args.contracts:,} contracts, {args.members} members and {args.lines} lines each)")
        *_, event_bytes, _ = await passes(pool, args.contracts, 500)  # warm: caches, plans
        print(f"  (a position event is {event_bytes:,} bytes)")
        for size in (1, 20, 500):
            rate, per_pass, _, server = await passes(pool, args.contracts, size)
            line = f"positions_per_s_pass_{size}={rate:,.0f}  ms_per_pass={per_pass:.2f}"
            print(line if server is None else f"{line}  postgres_cpu_us_per_position={server:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--contracts", type=int, default=1000)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--lines", type=int, default=200)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
