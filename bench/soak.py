"""`make soak`: a bounded steady feed on the embedded stack (Apache Kafka, PostgreSQL, the four services), printing
for each window the stack's CPU per line (services, broker and PostgreSQL), the submit-to-position latency p50/p99,
the CPU time the hypervisor gave other guests (steal) and a core-speed check (shared VMs swing), and each part's
resident memory, then whether the last window is within 10% of the first on CPU per line and p99.

Run: python -m bench.soak [--minutes 30] [--window-minutes 5] [--rate 1000] [--contracts 1000] [--members 100000]"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import psutil

from acoflow.kafka_node import kafka_version
from acoflow.stack import Stack, private_settings
from bench.machine import core_speed_ms, header
from bench.pipeline import Watcher, cpu_seconds, create_contracts, latency, stack_cpu, wait_assigned


def rss_mb(stack: Stack) -> dict[str, int]:
    """Each part's resident memory now (PostgreSQL: all its processes together)."""
    out = {name: psutil.Process(proc.pid).memory_info().rss >> 20 for name, proc in stack.services.items()}
    if stack.broker is not None and stack.broker.proc is not None:
        out["broker"] = psutil.Process(stack.broker.proc.pid).memory_info().rss >> 20
    postgres = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
    out["postgres"] = sum(p.memory_info().rss for p in postgres) >> 20
    return out


async def run(args: argparse.Namespace) -> None:
    print(header())
    print(f"core_speed_ms before={core_speed_ms():.0f}")
    per = args.members // args.contracts
    windows = max(1, args.minutes // args.window_minutes)
    with tempfile.TemporaryDirectory() as tmp:
        settings = private_settings(Path(tmp) / "state")
        stack = Stack(settings, settings.state_dir)
        await asyncio.to_thread(stack.start)
        try:
            print(f"stack: Apache Kafka {kafka_version()} (one KRaft node), PostgreSQL embedded; "
                  f"{args.contracts:,} contracts, {args.contracts * per:,} members; {args.rate:,} lines/s")  # fmt: skip
            await create_contracts(stack, args.contracts, per)
            await wait_assigned(stack, args.contracts * per)
            watcher = Watcher(stack.bootstrap)
            await watcher.start()
            rows: list[tuple[float, float]] = []
            try:
                for window in range(windows):
                    before = cpu_seconds(stack)
                    p50, p99, n, submitted = await latency(
                        stack, watcher, args.rate, args.window_minutes * 60, args.contracts, per, tag=f"W{window}"
                    )
                    after = cpu_seconds(stack)
                    cost = stack_cpu(before, after) / max(n, 1)
                    steal = after["steal"] - before["steal"]
                    rows.append((cost, p99))
                    memory = "  ".join(f"{k}={v}" for k, v in rss_mb(stack).items())
                    print(f"window {window + 1}/{windows}: cpu_ms_per_line={cost * 1000:.3f}  latency_ms_p50={p50:.0f}  "
                          f"p99={p99:.0f}  lines={n:,} submitted={submitted:,.0f}/s  steal_s={steal:.1f}  "
                          f"core_speed_ms={core_speed_ms():.0f}  rss_mb {memory}", flush=True)  # fmt: skip
            finally:
                await watcher.stop()
        finally:
            await asyncio.to_thread(stack.stop)
    (first_cost, first_p99), (last_cost, last_p99) = rows[0], rows[-1]
    print(f"last_vs_first cpu_per_line={last_cost / first_cost:.3f}  p99={last_p99 / first_p99:.3f}  "
          f"(within 10%: {abs(last_cost / first_cost - 1) <= 0.1 and last_p99 <= first_p99 * 1.1})")  # fmt: skip
    print(f"core_speed_ms after={core_speed_ms():.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--window-minutes", type=int, default=5)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--contracts", type=int, default=1_000)
    parser.add_argument("--members", type=int, default=100_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
