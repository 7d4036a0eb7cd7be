"""What the figures were measured on: printed beside every benchmark figure."""

from __future__ import annotations

import os
import platform


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
