"""What one claim line costs claims_ingest: its claim consumer's batch on its own, against a real PostgreSQL.

    python -m bench.claims [--dsn URL] [--members 100000] [--contracts 1000] [--lines 200000] [--batch 1000]

Attributes members to contracts as the pipeline benchmark does, then runs the claim consumer's handle() (parse
every record, then one transaction: lock members, store lines, attribute, write the spend batches to the
outbox) over batches of generated claim-line records, as FastStream hands them over. Prints lines per second,
the service's own CPU per line and the database's (when it runs on this machine), without Kafka or the other
services, so a change to the claim path can be measured without the whole stack's noise."""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
from typing import Any

import asyncpg
from aiokafka.structs import ConsumerRecord

from bench.machine import header
from bench.pipeline import PY_START, line_envelope
from bench.scratch import arguments, measure, scratch_pool
from services.claims_ingest.app import MIGRATIONS
from services.claims_ingest.handlers import SCHEMA, apply_claims, reject_claim
from shared.consumer import BatchConsumer
from shared.events import CLAIM_SUBMITTED
from shared.topics import CLAIMS_SUBMITTED
from shared.unit_of_work import UnitsOfWork


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
            service="claims_ingest", schema=SCHEMA, spec=CLAIM_SUBMITTED, topic=CLAIMS_SUBMITTED,
            units=UnitsOfWork(lambda: pool, SCHEMA), apply=apply_claims, reject=reject_claim, dedupe_by_id=False,
        )  # fmt: skip
        batches = records(args.lines, args.members, args.batch)
        gc.freeze()  # as the services do after start-up: the records held here are not the claim path's garbage
        print(header())
        print(f"  ({args.members:,} members in {args.contracts:,} contracts; {args.lines:,} lines in batches of {args.batch:,})")

        async def tidy() -> None:  # the relay's part, untimed: the outbox stays short
            async with pool.acquire() as conn:
                await conn.execute(f"DELETE FROM {SCHEMA}.outbox")

        figures = await measure(pool, consumer.handle, batches, len, "claims_lines_per_s", "line", tidy)
        async with pool.acquire() as conn:
            emitted = await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.emitted")
        print(f"  ({emitted:,} spend deltas emitted)")
        print(figures)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
