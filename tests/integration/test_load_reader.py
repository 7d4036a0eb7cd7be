"""`acoflow load` reads in a process of its own and publishes in this one: what it publishes and reports is what
a reading in one process counts, and what stops the reading reaches the caller as it was raised."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from rich.console import Console

from acoflow.load import dry_run, publish
from bench import cclf_parse
from readers.base import LoadError
from shared.broker import ensure_topics
from shared.topics import CLAIMS_REJECTED, CLAIMS_SUBMITTED, MEMBERS


async def _count(bootstrap: str, topic: str) -> int:
    """Messages on the topic, read from the start."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen, quiet = 0, 0
        while quiet < 3:  # three empty seconds: the end
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            got = sum(len(v) for v in batch.values())
            seen, quiet = seen + got, 0 if got else quiet + 1
        return seen
    finally:
        await consumer.stop()


def test_a_load_publishes_every_line_it_counts(broker: str, tmp_path: Path) -> None:
    paths = cclf_parse.write_feed(tmp_path, 12_000)  # more than two chunks
    quiet = Console(quiet=True)
    expected = dry_run(paths, "cclf", "CMS", quiet, quiet=True)

    async def run() -> tuple[int, int]:
        await ensure_topics(broker, [CLAIMS_SUBMITTED, CLAIMS_REJECTED, MEMBERS])
        before = await _count(broker, CLAIMS_SUBMITTED.name)
        report = await publish(paths, "cclf", "CMS", broker, quiet, quiet=True)
        assert (report.lines, report.published, report.rejected) == (expected.lines, 12_000, 0)
        assert report.ledger.total == expected.ledger.total
        return before, await _count(broker, CLAIMS_SUBMITTED.name)

    before, after = asyncio.run(run())
    assert after - before == 12_000


def test_what_stops_the_reading_reaches_the_caller(broker: str, tmp_path: Path) -> None:
    garbage = tmp_path / "notes.txt"
    garbage.write_text("not a claim file\n")
    quiet = Console(quiet=True)
    with pytest.raises((ValueError, LoadError), match="cannot tell the format"):
        asyncio.run(publish([garbage], None, "CMS", broker, quiet, quiet=True))
