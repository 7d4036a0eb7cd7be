"""FetchPace: a quiet consumer's fetch is answered by the first byte and otherwise waits long (a line wakes it at
once, an idle consumer costs little); batches in a steady stream make the broker hold records for the pace;
quiet again, the consumer is back to the first."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from shared.broker import FetchPace, batch_options
from shared.settings import Settings


async def test_a_steady_stream_is_fetched_in_paced_batches_and_a_quiet_consumer_waits_for_the_first_byte() -> None:
    settings = Settings(batch_pace_s=0.05, fetch_max_wait_ms=10_000, fetch_min_bytes=65_536)
    options = batch_options(settings, "g")
    fetcher = SimpleNamespace(_fetch_max_wait_ms=options["fetch_max_wait_ms"], _fetch_min_bytes=options["fetch_min_bytes"])
    pace = FetchPace(settings, SimpleNamespace(consumer=SimpleNamespace(_fetcher=fetcher)), hot=True)
    assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (10_000, 1)
    pace.batch()  # after a quiet spell: still answered by the first byte
    assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (10_000, 1)
    await asyncio.sleep(0.01)
    pace.batch()  # 10 ms later: a stream
    assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (50, 65_536)
    await asyncio.sleep(0.3)  # five paces with no batch
    assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (10_000, 1)


async def test_a_subscriber_not_started_yet_is_left_alone() -> None:
    pace = FetchPace(Settings(), SimpleNamespace(consumer=None), hot=False)
    pace.batch()
    pace.batch()
