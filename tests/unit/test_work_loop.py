"""WorkLoop's rest after a backlogged pass: a full pass is followed by a rest as long as the pass (times
backlog_rest); a smaller pass adds none. Its pace: wake-ups that come faster are served by one pass. Pace itself:
nothing waits after a quiet spell or in a backlog."""

from __future__ import annotations

import asyncio
import time

from shared.loops import Pace, WorkLoop


async def _gaps(sizes: list[int], backlog_rest: float) -> list[float]:
    """Seconds from the end of each pass to the start of the next; each pass takes 100 ms and more work arrives
    during it (it wakes the loop), so the only wait between passes is the rest."""
    ends: list[float] = []
    gaps: list[float] = []
    finished = asyncio.Event()
    loop: WorkLoop

    async def step() -> int:
        if ends:
            gaps.append(time.monotonic() - ends[-1])
        if len(ends) == len(sizes):
            finished.set()
            return 0
        await asyncio.sleep(0.1)
        loop.wake()
        ends.append(time.monotonic())
        return sizes[len(ends) - 1]

    loop = WorkLoop("test", step, batch=10, idle_s=5.0, backlog_rest=backlog_rest)
    loop.start()
    try:
        await asyncio.wait_for(finished.wait(), 5)
    finally:
        await loop.stop()
    return gaps


async def test_rests_only_after_a_backlogged_pass() -> None:
    # A full pass rests about as long as it took; passes of half a batch and less do not.
    gaps = await _gaps([10, 5, 4], backlog_rest=1.0)
    assert gaps[0] >= 0.095
    assert gaps[1] < 0.05 and gaps[2] < 0.05
    # Without backlog_rest, full passes follow each other at once.
    assert max(await _gaps([10, 10, 10], backlog_rest=0.0)) < 0.05


async def test_pace_serves_wake_ups_that_come_faster_with_one_pass() -> None:
    """Woken every 5 ms for 300 ms, a loop paced at 100 ms makes about 4 passes; unpaced, about one a wake-up."""

    async def passes(pace_s: float) -> int:
        count = 0

        async def step() -> int:
            nonlocal count
            count += 1
            return 1

        loop = WorkLoop("paced", step, batch=10, idle_s=5.0, pace_s=pace_s)
        loop.start()
        try:
            for _ in range(60):
                loop.wake()
                await asyncio.sleep(0.005)
        finally:
            await loop.stop()
        return count

    assert 2 <= await passes(0.1) <= 5
    assert await passes(0.0) >= 30


async def test_a_pace_waits_only_for_starts_that_come_faster_than_it() -> None:
    pace = Pace(0.2)
    started = time.monotonic()
    await pace.wait()  # the first start, after nothing: at once
    first = time.monotonic() - started
    await pace.wait()  # at once again: waits out the rest of the 200 ms
    second = time.monotonic() - started
    await pace.wait(backlog=True)  # a full batch: at once
    third = time.monotonic() - started
    await asyncio.sleep(0.25)  # a quiet spell longer than the pace
    before = time.monotonic()
    await pace.wait()
    after_quiet = time.monotonic() - before
    assert first < 0.05
    assert 0.19 <= second < 0.35
    assert third - second < 0.05
    assert after_quiet < 0.05
