"""What one spend delta costs settlement and its PostgreSQL: the spend.v2 consumer on its own.

    python -m bench.spend [--dsn URL] [--members 100000] [--contracts 1000] [--deltas 200000]

Runs settlement's spend-batch consumer (parse each spend.v2 message, dedupe it, then one statement adding its
deltas to every per-member, per-month, per-lag and per-contract total and marking the contracts) over
messages of 1,000 deltas spread as the pipeline benchmark spreads claim lines. Prints deltas per second, the
service's own CPU per delta and, when the server runs on this machine, the CPU its backends used per delta:
most of a delta's cost is in the database, which the whole-stack benchmark cannot split by statement."""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from aiokafka.structs import ConsumerRecord

from bench.machine import header
from bench.pipeline import PY_START
from bench.scratch import arguments, measure, scratch_pool
from services.settlement.app import MIGRATIONS
from services.settlement.handlers import apply_spend_batches
from services.settlement.repository import DB_SESSION, SCHEMA
from shared.consumer import BatchConsumer
from shared.envelope import new_envelope
from shared.events import MAX_SPEND_BATCH, SPEND_BATCH, SpendBatch, SpendDelta
from shared.topics import SPEND_BATCHES
from shared.unit_of_work import UnitsOfWork


def records(deltas: int, members: int, contracts: int) -> list[list[ConsumerRecord[Any, Any]]]:
    rng = random.Random(5)
    per = members // contracts
    out: list[list[ConsumerRecord[Any, Any]]] = []
    for start in range(0, deltas, MAX_SPEND_BATCH):
        chunk = []
        for n in range(start, min(deltas, start + MAX_SPEND_BATCH)):
            member = rng.randrange(members)
            served = PY_START + timedelta(days=rng.randrange(300))
            chunk.append(
                SpendDelta(
                    contract_id=f"BENCH-{member // per:04d}",
                    member_id=f"B{member:06d}",
                    line_key=f"bench|{n}",
                    enrollment_type="aged_nondual",
                    claim_type="professional",
                    service_month=served.replace(day=1),
                    paid_date=served + timedelta(days=rng.choice((10, 40, 70))),  # lags of 0 to 2 months
                    amount=Decimal(rng.randrange(2_000, 90_000)) / 100,
                )
            )
        value = new_envelope(SPEND_BATCH, SpendBatch(deltas=tuple(chunk)), "bench").to_bytes()
        out.append([ConsumerRecord(SPEND_BATCHES.name, 0, start, 0, 0, b"k", value, None, 1, len(value), ())])
    return out


async def run(args: argparse.Namespace) -> None:
    async with scratch_pool(args.dsn, SCHEMA, MIGRATIONS, DB_SESSION) as pool:
        consumer = BatchConsumer(
            service="settlement", schema=SCHEMA, spec=SPEND_BATCH, topic=SPEND_BATCHES, units=UnitsOfWork(lambda: pool, SCHEMA),
            apply=apply_spend_batches,
        )  # fmt: skip
        batches = records(args.deltas, args.members, args.contracts)
        gc.freeze()
        print(header())
        print(
            f"  ({args.members:,} members in {args.contracts:,} contracts; {args.deltas:,} deltas, {MAX_SPEND_BATCH:,} a message)"
        )
        # The position loop's part is not measured here: its marks are left in the table.
        print(await measure(pool, consumer.handle, batches, lambda b: MAX_SPEND_BATCH, "spend_deltas_per_s", "delta"))


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--deltas", type=int, default=200_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
