"""What one claim line costs claims_ingest: its claim consumer's batch on its own, against a real PostgreSQL.

    python -m bench.claims [--dsn URL] [--members 100000] [--contracts 1000] [--lines 200000] [--batch 1000]

Attributes members to contracts as the pipeline benchmark does, then runs the claim consumer's handle() (parse
every record, then one transaction: lock members, store lines, attribute, write the spend batches to the
outbox) over batches of generated claim-line records, as FastStream hands them over. Prints lines per second
and the service's own CPU per line, without Kafka or the other services, so a change to the claim path can be
measured without the whole stack's noise."""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
from typing import Any

import asyncpg
from aiokafka.structs import ConsumerRecord

from bench.machine import describe
from bench.pipeline import PY_START, line_envelope
from bench.scratch import DEFAULT_DSN, scratch_pool
from services.claims_ingest.app import MIGRATIONS
from services.claims_ingest.handlers import SCHEMA, apply_claims, reject_claim
from shared.events import CLAIM_SUBMITTED
from shared.kafka import BatchConsumer
from shared.topics import CLAIMS_SUBMITTED


async def attribute(pool: asyncpg.Pool, members: int, contracts: int) -> None:
    per = members // contracts
    periods = [{"start": PY_START.isoformat(), "end": "2025-12-31", "enrollment_type": "aged_nondual"}]
    async with pool.acquire() as conn:
        await conn.executemany(
            f"INSERT INTO {SCHEMA}.assignments (member_id, contract_id, payer, contract_version, periods)"
            " VALUES ($1, $2, 'CMS', 1, $3)",
            [(f"B{m:06d}", f"BENCH-{m // per:04d}", periods) for m in range(members)],
        )


def records(lines: int, members: int, batch: int) -> list[list[ConsumerRecord[Any, Any]]]:
    rng = random.Random(7)
    out: list[list[ConsumerRecord[Any, Any]]] = []
    for start in range(0, lines, batch):
        chunk = []
        for n in range(start, min(lines, start + batch)):
            key, value = line_envelope(n, rng.randrange(members), rng, "C")
            chunk.append(ConsumerRecord(CLAIMS_SUBMITTED.name, 0, n, 0, 0, key.encode(), value, None, len(key), len(value), ()))
        out.append(chunk)
    return out


async def run(args: argparse.Namespace) -> None:
    async with scratch_pool(args.dsn, SCHEMA, MIGRATIONS) as pool:
        await attribute(pool, args.members, args.contracts)
        consumer = BatchConsumer(
            service="claims_ingest", schema=SCHEMA, spec=CLAIM_SUBMITTED, topic=CLAIMS_SUBMITTED, pool=lambda: pool,
            apply=apply_claims, reject=reject_claim, dedupe_by_id=False,
        )  # fmt: skip
        batches = records(args.lines, args.members, args.batch)
        gc.freeze()  # as the services do after start-up: the records held here are not the claim path's garbage
        print(f"machine: {describe()}")
        print(f"  ({args.members:,} members in {args.contracts:,} contracts; {args.lines:,} lines in batches of {args.batch:,})")
        for b in batches[:5]:  # warm: caches, prepared statements
            await consumer.handle(b)
        wall = cpu = 0.0
        done = 0
        for b in batches[5:]:
            started, cpu_started = time.perf_counter(), time.process_time()
            await consumer.handle(b)
            wall += time.perf_counter() - started
            cpu += time.process_time() - cpu_started
            done += len(b)
            async with pool.acquire() as conn:  # the relay's part, untimed: the outbox stays short
                await conn.execute(f"DELETE FROM {SCHEMA}.outbox")
        async with pool.acquire() as conn:
            emitted = await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.emitted")
        print(f"  ({emitted:,} spend deltas emitted)")
        print(f"claims_lines_per_s={done / wall:,.0f}  service_cpu_us_per_line={cpu * 1e6 / done:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--contracts", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
