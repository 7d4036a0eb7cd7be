"""What the figures were measured on: printed beside every benchmark figure."""

from __future__ import annotations

import os
import platform
import time


def describe() -> str:
    model = "unknown cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.node()}: {model}, {os.cpu_count()} cpus, Python {platform.python_version()}, {platform.system()}"


def core_speed_ms() -> float:
    """Milliseconds a fixed pure-Python loop takes, best of five: on a shared VM the same machine swings by
    about 2x between minutes (57 to 112 ms across two `make bench` runs on one), so a run's figures are read
    beside it."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return best * 1000
