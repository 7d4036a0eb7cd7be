"""What the figures were measured on: printed beside every benchmark figure."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path


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


def header() -> str:
    """The lines a benchmark prints first: the machine, the command as typed, and the code it ran, so a figure
    can be reproduced from its own output."""
    main = sys.modules["__main__"]
    module = main.__spec__.name if main.__spec__ is not None else Path(sys.argv[0]).name
    command = shlex.join(["python", "-m", module, *sys.argv[1:]])
    return f"machine: {describe()}\ncommand: {command}\ncode: {_commit()}"


def _commit() -> str:
    root = Path(__file__).parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha.stdout.strip() + (" with uncommitted changes" if changed.stdout.strip() else "")


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
