"""A background loop that runs a step while it finds work and otherwise waits for a wake-up; the pace that
keeps work which comes in a steady stream together."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from shared.logging import get_logger

log = get_logger(__name__)


MAX_BACKLOG_REST_S = 1.0


class Pace:
    """Starts of work at least `seconds` apart: `wait()` before each start returns at once after a quiet spell and
    otherwise when `seconds` have passed since the last start, so what arrives in a steady stream meanwhile is
    taken together by the next start rather than one start each. A backlog (a full batch) waits for nothing."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._last = -seconds

    async def wait(self, backlog: bool = False) -> None:
        rest = self._last + self._seconds - time.monotonic()
        if rest > 0 and not backlog:
            await asyncio.sleep(rest)
        self._last = time.monotonic()


class WorkLoop:
    """Runs `step` over and over while it finds work (it returns how much it did, up to `batch`), then waits
    for a wake-up or `idle_s`. A failing step (broker or database away) is logged and tried again.

    `backlog_rest`: after a full pass (a backlog), rest this many times as long as the pass took, so what
    arrives meanwhile is done in one pass rather than spread over several. For work that is recomputed rather
    than consumed (a contract's position), that halves the recomputing under a backlog; a pass of less, as a
    steady feed makes, is followed at once: resting after passes of half a batch let a feed near half the
    loop's capacity push it into ever longer passes and rests (docs/benchmarks.md).

    `pace_s`: at least this long between the starts of two passes, so wake-ups that come faster (a steady feed
    commits many small transactions) are served by one pass rather than one each: the latency a pass may add."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[int]],
        batch: int,
        idle_s: float,
        backlog_rest: float = 0.0,
        pace_s: float = 0.0,
    ) -> None:
        self.name = name
        self._step = step
        self._batch = batch
        self._idle = idle_s
        self._backlog_rest = backlog_rest
        self._pace = Pace(pace_s)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                # Cleared before the pass, so a commit that wakes us during it is not lost.
                self._wake.clear()
                started = time.monotonic()
                done = await self._step()
                if self._backlog_rest and done >= self._batch:
                    await asyncio.sleep(min(MAX_BACKLOG_REST_S, (time.monotonic() - started) * self._backlog_rest))
                if done < self._batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._idle)
                    await self._pace.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("work_loop_retry", loop=self.name, error=type(exc).__name__, detail=str(exc)[:200])
                await asyncio.sleep(1.0)
