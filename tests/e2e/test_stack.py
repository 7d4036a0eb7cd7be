"""End to end through all four services, on the real broker and a real PostgreSQL, as `acoflow up` runs them."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psutil
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console

from acoflow.load import publish
from acoflow.stack import Stack, free_port, private_settings
from services.notifications.handlers import verify
from shared.broker import partition_of
from shared.topics import ALL_TOPICS, SPEND_BATCHES

pytestmark = pytest.mark.e2e


SECRET = "e2e-webhook-secret-of-at-least-32-characters"


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Receiver.received.append(
            {"raw": body, "body": json.loads(body), "signature": self.headers["x-acoflow-signature"],
             "key": self.headers["idempotency-key"]}
        )  # fmt: skip
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def line(n: int, member: str, amount: str, **kw: Any) -> dict[str, Any]:
    return {
        "source": "e2e",
        "claim_id": f"C{n}",
        "line_number": 1,
        "member_id": member,
        "payer": "CMS",
        "claim_type": "professional",
        "from_date": "2025-03-10",
        "thru_date": "2025-03-10",
        "paid_date": "2025-04-01",
        "paid_amount": amount,
        **kw,
    }


async def _read(bootstrap: str, topic: str, expected: int) -> list[dict[str, Any]]:
    """The topic's events from the start (at least `expected`, or what came in 30 s), with their keys."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"e2e-{topic}-{time.monotonic_ns()}",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 30
        while len(found) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                found += [{**json.loads(r.value), "key": r.key.decode() if r.key else None} for r in records]
    finally:
        await consumer.stop()
    return found


async def _partition_counts(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([t.name for t in ALL_TOPICS])}
    finally:
        await admin.close()


def test_claims_to_settlement_to_webhook(tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    hook_port = free_port()
    server = HTTPServer(("127.0.0.1", hook_port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = private_settings(
        tmp_path / "state",
        database_url=database,
    )
    import os

    os.environ["ACOFLOW_WEBHOOK_URL"] = f"http://127.0.0.1:{hook_port}/hook"
    os.environ["ACOFLOW_WEBHOOK_SECRET"] = SECRET
    # A contract of a handful of lines: the alert warm-up (100 lines by default) is tuned down to judge it.
    rules = tmp_path / "rules.yaml"
    rules.write_text("warmup: {min_lines: 1}\ndefaults:\n  - {rule: savings_below_msr}\n")
    monkeypatch.setenv("ACOFLOW_ALERT_RULES_FILE", str(rules))
    stack = Stack(settings, settings.state_dir)
    stack.start()
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    pids = [p.pid for p in stack.services.values()] + [stack.broker.proc.pid if stack.broker and stack.broker.proc else 0]
    try:
        contract = {
            "contract_id": "E2E-1",
            "name": "E2E ACO",
            "payer": "CMS",
            "terms": {
                "program": "MSSP",
                "track": "BE",
                "performance_year": 2025,
                "period_start": "2025-01-01",
                "period_end": "2025-12-31",
                "benchmark_per_capita": {"aged_nondual": "1200.00"},
                "msr": "0.02",
            },
            "roster": [
                {"member_id": "A1"},
                {"member_id": "A2"},
                {"member_id": "A3", "start": "2025-06-01"},
            ],  # A3's March claim is not attributed
        }
        bad = httpx.post(
            stack.url("contracts") + "/contracts",
            json={**contract, "terms": {**contract["terms"], "track": "XX"}},
            headers=auth,
            timeout=30,
        )
        assert bad.status_code == 422 and "track" in bad.text
        assert httpx.post(stack.url("contracts") + "/contracts", json=contract, headers=auth, timeout=30).status_code == 201
        feed = tmp_path / "feed.jsonl"
        lines = [
            line(1, "A1", "100.10"),
            line(2, "A2", "250.00"),
            line(2, "A2", "250.00"),  # the same row again: counted once
            line(3, "A2", "40.00", adjustment_type="cancellation"),
            line(4, "A3", "999.99"),  # outside A3's period
            line(5, "ZZ", "500.00"),  # not on any roster
            line(6, "A1", "75.00", denied=True),
            line(7, "A1", "12.345678"),  # sub-cent amounts are kept exact
            line(8, "A1", "abc"),  # invalid amount
            {"claim_id": "C9", "member_id": "A1"},  # missing fields
        ]
        feed.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json at all\n")
        # The roster reaches claims_ingest first (contracts sees it confirmed), so the load's lines find it.
        deadline = time.monotonic() + 30
        while httpx.get(stack.url("contracts") + "/unconfirmed", headers=auth, timeout=10).json() and time.monotonic() < deadline:
            time.sleep(0.2)
        report = asyncio.run(publish([feed], "jsonl", "CMS", stack.bootstrap, Console(), quiet=True))
        expected = Decimal("100.10") + Decimal("250.00") - Decimal("40.00") + Decimal("12.345678")
        position: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = httpx.get(stack.url("settlement") + "/positions/E2E-1", headers=auth, timeout=10)
            if r.status_code == 200 and Decimal(r.json()["paid_to_date"]) == expected:
                position = r.json()
                break
            time.sleep(0.5)
        assert position, f"settlement did not reach {expected}"
        assert position["members"] == 3 and position["gate"] in ("savings", "neutral", "losses")
        # The embedded broker's topics, made by the stack and by each service, have production's counts.
        assert asyncio.run(_partition_counts(stack.bootstrap)) == {t.name: t.partitions for t in ALL_TOPICS}
        rejected = asyncio.run(_read(stack.bootstrap, "claims.rejected.v1", 3))
        assert len(rejected) == 3
        fields = {r["field"] for rej in rejected for r in rej["payload"]["reasons"]}
        # Two refused by claims_ingest (named payload fields), one by the loader before publishing.
        assert {"payload.paid_amount", "payload.source", "$"} <= fields

        # What a downstream team reads: every delta of a spend batch is of a contract on the key's partition;
        # money and rates are plain decimal strings of their stated scale; the load's id follows its lines to
        # spend and positions.
        batches = asyncio.run(_read(stack.bootstrap, "spend.v2", 1))
        n = SPEND_BATCHES.partitions
        routes = {b["key"]: {partition_of(d["contract_id"], n) for d in b["payload"]["deltas"]} for b in batches}
        assert batches and all(found == {partition_of(key, n)} for key, found in routes.items())
        assert {b["correlation_id"] for b in batches} == {report.load_id}
        assert {d["amount"] for b in batches for d in b["payload"]["deltas"]} >= {"100.100000", "12.345678", "-40.000000"}
        positions = [e for e in asyncio.run(_read(stack.bootstrap, "settlement.v1", 1)) if e["key"] == "E2E-1"]
        assert report.load_id in {e["correlation_id"] for e in positions}
        latest = positions[-1]["payload"]
        assert re.fullmatch(r"-?[0-9]+\.[0-9]{6}", latest["paid_to_date"]) and re.fullmatch(r"-?[0-9]+\.[0-9]{10}", latest["msr"])

        # A retroactive roster change: A3 covered from January now, A2 removed.
        roster = [{"member_id": "A1"}, {"member_id": "A3", "start": "2025-01-01"}]
        assert (
            httpx.put(stack.url("contracts") + "/contracts/E2E-1/roster", json=roster, headers=auth, timeout=30).status_code
            == 200
        )
        expected_after = Decimal("100.10") + Decimal("12.345678") + Decimal("999.99")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = httpx.get(stack.url("settlement") + "/positions/E2E-1", headers=auth, timeout=10)
            if Decimal(r.json()["paid_to_date"]) == expected_after and r.json()["contract_version"] == 2:
                break
            time.sleep(0.5)
        assert Decimal(r.json()["paid_to_date"]) == expected_after
        # What-if: the same spend under ENHANCED and BASIC A, beside the current BASIC E; nothing changes.
        env = {**os.environ, "ACOFLOW_STATE_DIR": str(settings.state_dir)}
        cmd = [sys.executable, "-m", "acoflow.cli", "what-if", "E2E-1", "--track", "EN", "--track", "BA", "--mlr", "0.02"]
        out = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        scenarios = json.loads(out.stdout)["scenarios"]
        assert scenarios[0]["label"] == "current"
        assert [s["position"]["track"] for s in scenarios] == ["BE", "EN", "BA"]
        assert {Decimal(s["position"]["paid_to_date"]) for s in scenarios} == {expected_after}
        table = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert "downside exposure at cap" in table.stdout
        bad = httpx.post(
            stack.url("settlement") + "/positions/E2E-1/what-if",
            json={"scenarios": [{"terms": {"track": "XX"}}]},
            headers=auth,
            timeout=30,
        )
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:4] == ["body", "scenarios", 0, "terms"]
        still = httpx.get(stack.url("settlement") + "/positions/E2E-1", headers=auth, timeout=10).json()
        assert still["track"] == "BE" and still["contract_version"] == 2
        history = httpx.get(stack.url("contracts") + "/contracts/E2E-1/history", headers=auth, timeout=10).json()
        assert [h["action"] for h in history] == ["create", "roster"]

        # Spend far below the benchmark early on projects savings; the default rule alerts when the
        # projected savings rate is below the MSR. Whatever held, exactly one alert per transition arrives.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not Receiver.received:
            time.sleep(0.5)
        assert Receiver.received, "no webhook delivery"
        first = Receiver.received[0]
        # An alert carries the correlation id of the position it judged (the load's, or a roster change's).
        alerts = [a for a in asyncio.run(_read(stack.bootstrap, "notifications.v1", 1)) if a["payload"]["kind"] == "raised"]
        judged = {e["correlation_id"] for e in asyncio.run(_read(stack.bootstrap, "settlement.v1", 1))}
        assert alerts and {a["correlation_id"] for a in alerts} <= judged and None not in judged
        # The signature covers a timestamp and the body: it verifies now, and not as a replay an hour later.
        assert verify(SECRET, first["signature"], first["raw"])
        assert not verify(SECRET, first["signature"], first["raw"], now=int(time.time()) + 3600)
        assert not verify(SECRET, first["signature"], first["raw"] + b" ")
        keys = [r["key"] for r in Receiver.received]
        assert len(keys) == len(set(keys))
        # One key for every service: created (and revoked) in contracts, replicated over keys.v1.
        reads = {"claims_ingest": "/rejects", "settlement": "/positions", "notifications": "/deliveries"}
        for name, path in reads.items():
            assert httpx.get(stack.url(name) + path, timeout=10).status_code == 401
        viewer = httpx.post(
            stack.url("contracts") + "/keys", json={"name": "analyst", "role": "viewer"}, headers=auth, timeout=10
        )
        vh = {"X-API-Key": viewer.json()["key"]}

        def answers(expected: int) -> bool:
            return all(httpx.get(stack.url(n) + p, headers=vh, timeout=10).status_code == expected for n, p in reads.items())

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not answers(200):
            time.sleep(0.3)
        assert answers(200)
        assert httpx.post(stack.url("notifications") + "/deliveries/retry", headers=vh, timeout=10).status_code == 403
        retried = httpx.post(stack.url("notifications") + "/deliveries/retry", headers=auth, timeout=10)
        assert retried.status_code == 200 and retried.json() == {"retried": 0}, retried.text
        # A contract's own rules join the defaults; a bad one is refused naming its field.
        rules_url = stack.url("notifications") + "/rules/E2E-RULES"
        defaults = httpx.get(rules_url, headers=vh, timeout=10).json()
        rule = {"rule": "projected_loss_above", "threshold": "1000", "name": "e2e-loss"}
        stored = httpx.put(rules_url, json=[rule], headers=auth, timeout=10)
        assert stored.status_code == 200, stored.text
        assert len(stored.json()) == len(defaults) + 1 and httpx.get(rules_url, headers=vh, timeout=10).json() == stored.json()
        bad = httpx.put(rules_url, json=[{**rule, "rule": "nonsense"}], headers=auth, timeout=10)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:3] == ["body", 0, "rule"], bad.text
        revoked = httpx.delete(stack.url("contracts") + f"/keys/{viewer.json()['key_id']}", headers=auth, timeout=10)
        assert revoked.status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not answers(401):
            time.sleep(0.3)
        assert answers(401)
        for name in ("contracts", "claims_ingest", "settlement", "notifications"):
            assert httpx.get(stack.url(name) + "/metrics", timeout=10).status_code == 200
        metrics = httpx.get(stack.url("claims_ingest") + "/metrics", timeout=10).text
        assert "acoflow_events_rejected_total" in metrics and "faststream_received_messages_total" in metrics
        assert 'acoflow_consumer_lag{group="claims_ingest' in metrics
        # Request latency and outcome by route template, the refused requests included.
        settlement = httpx.get(stack.url("settlement") + "/metrics", timeout=10).text
        assert 'acoflow_http_request_duration_seconds_count{handler="/positions",method="GET"}' in settlement
        assert 'acoflow_http_requests_total{handler="/positions",method="GET",status="2xx"}' in settlement
        assert 'acoflow_http_requests_total{handler="/positions",method="GET",status="4xx"}' in settlement
    finally:
        stack.stop()
        server.shutdown()
        os.environ.pop("ACOFLOW_WEBHOOK_URL", None)
        os.environ.pop("ACOFLOW_WEBHOOK_SECRET", None)
    time.sleep(0.5)
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
