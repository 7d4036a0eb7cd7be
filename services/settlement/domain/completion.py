"""Completion factors estimated from a contract's own paid-date history (METHODOLOGY.md section 4): the
chain-ladder method on the paid triangle (service month x months of lag until payment). No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache

from shared.money import ONE, ZERO

# A lag's development is estimated only from at least this many service months observed past it.
MIN_MONTHS_PER_LAG = 4
MAX_LAG = 24
FLOOR = Decimal("0.01")


@lru_cache(maxsize=4096)
def month_index(key: str) -> int:
    """A YYYY-MM key as year * 12 + month - 1. Cached: a position reads the same few dozen keys many times."""
    return int(key[:4]) * 12 + int(key[5:7]) - 1


def estimate_completion(paid: Mapping[tuple[str, int], Decimal], known_through: int) -> tuple[Decimal, ...] | None:
    """Share of a service month's eventual spend paid by each lag (0, 1, ...), or None when the history
    is too short to say. `paid` maps (service month YYYY-MM, lag in months) to the amount paid at that lag;
    `known_through` is the month index (year * 12 + month - 1) up to which payments are known."""
    by_month: dict[int, dict[int, Decimal]] = {}
    longest = 0
    for (m, lag), amount in paid.items():
        index = month_index(m)
        lags = by_month.get(index)
        if lags is None:
            lags = by_month[index] = {}
        lags[lag] = amount
        if lag > longest:
            longest = lag
    # Past the longest lag anything was paid at, every month's development is exactly 1, which changes no
    # factor: the triangle stops one lag after it.
    longest = min(MAX_LAG, longest + 1)
    # Per lag, over the months observed at lag + 1 (and so at lag), in month order: cumulative spend at
    # lag (before) and at lag + 1 (after), and how many months. Each month's cumulative paid runs along its
    # lags up to what is known; a month with nothing paid yet by a lag says nothing about that lag.
    before = [ZERO] * MAX_LAG
    after = [ZERO] * MAX_LAG
    months = [0] * MAX_LAG
    for index in sorted(by_month):
        lags = by_month[index]
        cumulative = lags.get(0, ZERO)
        for lag in range(min(longest, known_through - index)):
            paid_next = lags.get(lag + 1)
            following = cumulative if paid_next is None else cumulative + paid_next
            if cumulative > 0:
                before[lag] += cumulative
                after[lag] += following
                months[lag] += 1
            cumulative = following
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
