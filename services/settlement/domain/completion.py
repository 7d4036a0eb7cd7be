"""Completion factors estimated from a contract's own paid-date history (METHODOLOGY.md section 4): the
chain-ladder method on the paid triangle (service month x months of lag until payment). No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from shared.money import ONE, ZERO

# A lag's development is estimated only from at least this many service months observed past it.
MIN_MONTHS_PER_LAG = 4
MAX_LAG = 24
FLOOR = Decimal("0.01")


def month_index(key: str) -> int:
    return int(key[:4]) * 12 + int(key[5:7]) - 1


def estimate_completion(paid: Mapping[tuple[str, int], Decimal], known_through: int) -> tuple[Decimal, ...] | None:
    """Share of a service month's eventual spend paid by each lag (0, 1, ...), or None when the history
    is too short to say. `paid` maps (service month YYYY-MM, lag in months) to the amount paid at that lag;
    `known_through` is the month index (year * 12 + month - 1) up to which payments are known."""
    by_month: dict[int, dict[int, Decimal]] = {}
    for (m, lag), amount in paid.items():
        by_month.setdefault(month_index(m), {})[lag] = amount
    # Past the longest lag anything was paid at, every month's development is exactly 1, which changes no
    # factor: the triangle stops one lag after it.
    longest = min(MAX_LAG, max((lag for _, lag in paid), default=0) + 1)
    # Per service month (in month order): cumulative paid at lag 0, 1, ... up to what is known.
    cumulative: list[list[Decimal]] = []
    for index in sorted(by_month):
        lags = by_month[index]
        running = ZERO
        cum: list[Decimal] = []
        for lag in range(0, min(longest, known_through - index) + 1):
            running += lags.get(lag, ZERO)
            cum.append(running)
        cumulative.append(cum)
    # Per lag, over the months observed at lag + 1 (and so at lag), in month order: cumulative spend at
    # lag (before) and at lag + 1 (after), and how many months.
    before = [ZERO] * MAX_LAG
    after = [ZERO] * MAX_LAG
    months = [0] * MAX_LAG
    for cum in cumulative:
        for lag in range(len(cum) - 1):
            if cum[lag] > 0:
                before[lag] += cum[lag]
                after[lag] += cum[lag + 1]
                months[lag] += 1
    development: list[Decimal] = []
    for lag in range(MAX_LAG):
        if months[lag] < MIN_MONTHS_PER_LAG:
            break
        development.append(after[lag] / before[lag])
    if not development:
        return None
    factors: list[Decimal] = []
    for lag in range(len(development)):
        remaining = ONE
        for f in development[lag:]:
            remaining *= f
        factors.append(min(ONE, max(FLOOR, ONE / remaining)) if remaining > 0 else ONE)
    return tuple(factors)
