"""`acoflow load`: read payer files with their loaders, then publish them or, with --dry-run, only count."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import multiprocessing
import pickle
import queue
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from readers.base import NAMESPACE, IdChange, Item, LoadOptions, MemberRecord, Rejected, submission
from readers.registry import plan
from services.claims_ingest.domain.versions import Ledger
from shared.envelope import Envelope, Reason, new_envelope, reasons_from
from shared.events import CLAIM_REJECTED, MEMBER_ID_CHANGED, ClaimLine, ClaimRejected, MemberIdChanged, RejectReason
from shared.settings import get_settings
from shared.topics import CLAIMS_REJECTED, CLAIMS_SUBMITTED, MEMBERS

PRODUCER = "acoflow-load"
CHUNK = 5000
MAX_ORIGINAL = 200_000


EXAMPLES = 5


@dataclass(frozen=True)
class Refusal:
    """One refused record, where it is and why (what a payer needs to fix the file; no record content)."""

    where: str
    reasons: tuple[Reason, ...]


@dataclass
class LoadReport:
    lines: int = 0
    rejected: int = 0
    id_changes: int = 0
    ledger: Ledger = field(default_factory=Ledger)
    members: dict[str, MemberRecord] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    published: int = 0
    # The load's id: every event it publishes carries it as correlation_id, and so do the spend, positions and
    # alerts they cause.
    load_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    refusals_by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)  # (field, code) -> records
    first_refusals: list[Refusal] = field(default_factory=list)
    records: int = 0

    def refuse(self, where: str, reasons: Sequence[Reason]) -> None:
        self.rejected += 1
        for r in {(r.field, r.code) for r in reasons}:
            self.refusals_by_reason[r] += 1
        if len(self.first_refusals) < EXAMPLES:
            self.first_refusals.append(Refusal(where, tuple(reasons)))

    def summary(self) -> dict[str, Any]:
        return {
            "load_id": self.load_id,
            "lines": self.lines,
            "rejected": self.rejected,
            "rejected_by_reason": [{"field": f, "code": c, "records": n} for (f, c), n in self.refusals_by_reason.most_common()],
            "first_rejected": [{"where": r.where, "reasons": [x.as_dict() for x in r.reasons]} for r in self.first_refusals],
            "conflicting": self.ledger.conflicts,
            "paid_total": str(self.ledger.total),
            "by_claim_type": {k: str(v) for k, v in self.ledger.by_claim_type.items()},
            "gross_by_claim_type": {k: str(v) for k, v in self.ledger.gross_by_claim_type.items()},
        }


def items(paths: list[Path], fmt: str | None, options: LoadOptions) -> Iterator[tuple[str, Item]]:
    """Each item with where it came from: the loader, and the files it read."""
    for loader, group in plan(paths, fmt):
        where = f"{loader.name} ({', '.join(p.name for p in group)})"
        for item in loader.read(group, options):
            yield where, item


def _stable_id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "|".join(parts))


def rejected_event(r: Rejected, load_id: str | None = None) -> tuple[str, bytes]:
    payload = ClaimRejected(
        source_topic="file",
        source_file=r.file,
        source_line=r.line,
        source_format=r.fmt,
        reasons=tuple(RejectReason(**x.as_dict()) for x in r.reasons),
        original=r.original[:MAX_ORIGINAL],
    )
    digest = hashlib.sha256(r.original.encode(errors="replace")).hexdigest()
    event_id = _stable_id("rejected", r.file, str(r.line), digest)
    env = new_envelope(CLAIM_REJECTED, payload, PRODUCER, event_id=event_id, correlation_id=load_id)
    return "file:" + r.file, env.to_bytes()


def id_change_event(change: IdChange, payer: str, load_id: str | None = None) -> tuple[str, bytes]:
    payload = MemberIdChanged(
        payer=payer,
        previous_id=change.previous_id,
        current_id=change.current_id,
        effective_date=change.effective_date,
        source="cclf9",
    )
    event_id = _stable_id("id_changed", payer, change.previous_id, change.current_id)
    env: Envelope[MemberIdChanged] = new_envelope(MEMBER_ID_CHANGED, payload, PRODUCER, event_id=event_id, correlation_id=load_id)
    return change.previous_id, env.to_bytes()


def account(report: LoadReport, item: Item, where: str = "") -> ClaimLine | None:
    """Count an item the way claims_ingest will treat it; a claim line that validates is returned."""
    report.records += 1
    if isinstance(item, Rejected):
        report.refuse(f"{item.file} line {item.line}", item.reasons)
    elif isinstance(item, IdChange):
        report.id_changes += 1
    elif isinstance(item, MemberRecord):
        report.members[item.member_id] = item
    else:
        try:
            line = ClaimLine.model_validate(item)
        except ValidationError as exc:
            # Read, but not a valid claim line: claims_ingest refuses it with these reasons.
            report.refuse(f"{where} record {report.records}", reasons_from(exc))
            return None
        report.lines += 1
        report.ledger.add(line)
        return line
    return None


class RateColumn(ProgressColumn):
    """Records a second, over rich's recent window."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "", style="progress.data.speed")


def _progress(console: Console, quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )


def dry_run(paths: list[Path], fmt: str | None, payer: str, console: Console, quiet: bool) -> LoadReport:
    report = LoadReport()
    options = LoadOptions(payer=payer, notes=report.notes)
    with _progress(console, quiet) as progress:
        task = progress.add_task("parsing", total=None)
        for n, (where, item) in enumerate(items(paths, fmt, options), start=1):
            account(report, item, where)
            if n % CHUNK == 0:
                progress.update(task, completed=n)
    return report


def read_and_encode(paths: list[Path], fmt: str | None, payer: str, report: LoadReport) -> Iterator[list[tuple[str, str, bytes]]]:
    """The load's events, CHUNK at a time, as (topic, key, value), counting each record into `report`."""
    options = LoadOptions(payer=payer, notes=report.notes)
    chunk: list[tuple[str, str, bytes]] = []
    occurred_at = datetime.now(UTC).isoformat()  # per chunk: the time the load read it
    for where, item in items(paths, fmt, options):
        line = account(report, item, where)
        if isinstance(item, Rejected):
            chunk.append((CLAIMS_REJECTED.name, *rejected_event(item, report.load_id)))
        elif isinstance(item, IdChange):
            chunk.append((MEMBERS.name, *id_change_event(item, payer, report.load_id)))
        elif isinstance(item, dict):
            event = submission(item, PRODUCER, report.load_id, validated=line, occurred_at=occurred_at)
            chunk.append((CLAIMS_SUBMITTED.name, *event))
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
            occurred_at = datetime.now(UTC).isoformat()
    if chunk:
        yield chunk


def _reader(paths: list[Path], fmt: str | None, payer: str, load_id: str, out: Queue[Any]) -> None:
    """The reading process: its chunks, then its report (or what stopped it), on `out`."""
    try:
        report = LoadReport(load_id=load_id)
        for chunk in read_and_encode(paths, fmt, payer, report):
            out.put(("chunk", chunk))
        out.put(("done", report))
    except BaseException as exc:  # the publisher raises what stopped the reading (a refused file: a usage error)
        try:
            pickle.dumps(exc)
        except Exception:
            exc = RuntimeError(f"reading the files failed: {type(exc).__name__}: {exc}")
        out.put(("failed", exc))


async def publish(paths: list[Path], fmt: str | None, payer: str, bootstrap: str, console: Console, quiet: bool) -> LoadReport:
    """Read, validate and encode in a process of their own while this one publishes: parsing and encoding cost
    more than sending, and the two run on two cores. A few chunks wait between them at most."""
    from shared.broker import make_producer, publish_all

    # Spawned, not forked: the caller may have threads (its event loop's executor), whose locks a fork would copy
    # as they stand. As with any spawned process, a script calling this needs an `if __name__ == "__main__"`.
    context = multiprocessing.get_context("spawn")
    out: Queue[Any] = context.Queue(maxsize=4)
    reader = context.Process(target=_reader, args=(paths, fmt, payer, str(uuid.uuid4()), out), name="acoflow-load-reader")
    reader.start()
    producer = make_producer(bootstrap, PRODUCER, get_settings())
    published = 0
    try:
        await producer.start()
        with _progress(console, quiet) as progress:
            task = progress.add_task("publishing", total=None)
            while True:
                kind, body = await asyncio.to_thread(_next, out, reader)
                if kind == "failed":
                    raise body
                if kind == "done":
                    report: LoadReport = body
                    break
                await publish_all(producer, body)
                published += len(body)
                progress.update(task, completed=published)
            progress.update(task, completed=published, total=published)
        report.published = published
        return report
    finally:
        await producer.stop()
        reader.join(timeout=5)
        if reader.is_alive():
            reader.kill()


def _next(out: Queue[Any], reader: BaseProcess) -> tuple[str, Any]:
    while True:
        try:
            item: tuple[str, Any] = out.get(timeout=1)
            return item
        except queue.Empty:
            if not reader.is_alive():
                try:
                    last: tuple[str, Any] = out.get(timeout=0.5)  # what it wrote as it ended
                    return last
                except queue.Empty:
                    return "failed", RuntimeError(f"the reading process stopped (exit code {reader.exitcode})")


def write_roster(path: Path, members: dict[str, MemberRecord]) -> int:
    """The members a CCLF8 lists, as the roster CSV the contracts API takes (no names, no addresses)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["member_id", "enrollment_type", "start", "end"])
        for m in members.values():
            writer.writerow([m.member_id, m.enrollment_type, "", m.death_date.isoformat() if m.death_date else ""])
    return len(members)


def summary_json(report: LoadReport) -> str:
    return json.dumps(report.summary())
