"""The contracts service over real HTTP and a real PostgreSQL: auth on every route, validation that names
the field, immutable versions with audit, events published once per change, and `contracts apply`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer

from acoflow.stack import free_port
from services.contracts.app import DECLARATION, MIGRATIONS, build
from shared.auth import new_key
from shared.service import ServiceRuntime
from shared.settings import Settings

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parents[2] / "examples" / "contracts"
CONTRACT = {
    "contract_id": "API-1",
    "name": "API ACO",
    "payer": "CMS",
    "terms": {
        "program": "MSSP",
        "track": "BE",
        "performance_year": 2025,
        "period_start": "2025-01-01",
        "period_end": "2025-12-31",
        "benchmark_per_capita": {"aged_nondual": "12000.00", "disabled": "11000.00"},
        "msr": "0.02",
    },
    "roster": [{"member_id": "R1"}, {"member_id": "R2"}],
}


@pytest.fixture
async def service(broker: str, database: str) -> AsyncIterator[tuple[str, str]]:
    _, admin_key = new_key()
    port = free_port()
    settings = Settings(kafka_bootstrap=broker, database_url=database, bootstrap_api_key=admin_key, contracts_port=port)
    runtime = ServiceRuntime(DECLARATION, Path(MIGRATIONS), settings)
    server = uvicorn.Server(uvicorn.Config(build(runtime), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", admin_key
    finally:
        server.should_exit = True
        await task


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_auth_on_every_route_and_roles(service: tuple[str, str]) -> None:
    base, admin = service
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        viewer = (await http.post("/keys", json={"name": "analyst", "role": "viewer"}, headers=bearer(admin))).json()
        editor = (await http.post("/keys", json={"name": "finance", "role": "editor"}, headers=bearer(admin))).json()
        assert viewer["key"].startswith("acf_") and editor["role"] == "editor"
        routes: list[tuple[str, str, Any]] = [
            ("GET", "/contracts", None),
            ("GET", "/contracts/API-1", None),
            ("GET", "/contracts/API-1/history", None),
            ("POST", "/contracts", CONTRACT),
            ("PUT", "/contracts/API-1", {"name": "x"}),
            ("PUT", "/contracts/API-1/roster", [{"member_id": "R1"}]),
            ("POST", "/contracts/API-1/quality", {"performance_year": 2025, "quality_score": "0.9"}),
            ("GET", "/keys", None),
            ("POST", "/keys", {"name": "n", "role": "viewer"}),
            ("DELETE", "/keys/nope", None),
        ]
        for method, path, body in routes:
            for headers in ({}, bearer("acf_not_a_key"), {"X-API-Key": "wrong"}):
                r = await http.request(method, path, json=body, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.status_code)
                assert r.headers["www-authenticate"] == "Bearer"
        # Liveness, metrics and the API's own documents are public (/docs opens in a browser; calls need a key).
        for path in ("/health", "/metrics", "/openapi.json", "/docs"):
            assert (await http.get(path)).status_code == 200
        writes = [r for r in routes if r[0] != "GET" and not r[1].startswith("/keys")]
        for method, path, body in writes:
            r = await http.request(method, path, json=body, headers=bearer(viewer["key"]))
            assert r.status_code == 403 and "editor" in r.text, (method, path)
        for method, path, body in [r for r in routes if r[1].startswith("/keys")]:
            r = await http.request(method, path, json=body, headers={"X-API-Key": editor["key"]})
            assert r.status_code == 403 and "admin" in r.text, (method, path)
        assert (await http.get("/openapi.json", headers=bearer(viewer["key"]))).status_code == 200

        listed = (await http.get("/keys", headers=bearer(admin))).json()
        assert {k["name"] for k in listed} == {"bootstrap", "analyst", "finance"}
        assert not any("key" in k or "key_hash" in k for k in listed)
        assert (await http.delete(f"/keys/{viewer['key_id']}", headers=bearer(admin))).status_code == 200
        assert (await http.get("/contracts", headers=bearer(viewer["key"]))).status_code == 401
        # The bootstrap key is the only admin: it cannot be revoked until another admin key exists.
        bootstrap = next(k for k in listed if k["name"] == "bootstrap")
        last = await http.delete(f"/keys/{bootstrap['key_id']}", headers=bearer(admin))
        assert last.status_code == 409 and "last active admin" in last.json()["detail"][0]["msg"]
        second = (await http.post("/keys", json={"name": "ops", "role": "admin"}, headers=bearer(admin))).json()
        assert (await http.delete(f"/keys/{bootstrap['key_id']}", headers=bearer(second["key"]))).status_code == 200


async def test_validation_versions_audit_and_events_once(service: tuple[str, str], broker: str) -> None:
    base, admin = service
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=bearer(admin)) as http:
        editor = (await http.post("/keys", json={"name": "finance", "role": "editor"})).json()
        ed = bearer(editor["key"])
        bad_track = {**CONTRACT, "terms": {**CONTRACT["terms"], "track": "ZZ"}}
        r = await http.post("/contracts", json=bad_track, headers=ed)
        assert r.status_code == 422 and any(d["loc"][:2] == ["body", "terms"] and "track" in d["msg"] for d in r.json()["detail"])
        bad_period = {**CONTRACT, "terms": {**CONTRACT["terms"], "period_end": "2024-12-31"}}
        r = await http.post("/contracts", json=bad_period, headers=ed)
        assert r.status_code == 422 and "period_end" in r.text

        assert (await http.post("/contracts", json=CONTRACT, headers=ed)).status_code == 201
        assert (await http.post("/contracts", json=CONTRACT, headers=ed)).status_code == 409
        r = await http.put("/contracts/API-1", json={"terms": {**CONTRACT["terms"], "msr": "0.03"}}, headers=ed)
        assert r.json()["version"] == 2
        same = await http.put("/contracts/API-1", json={"terms": {**CONTRACT["terms"], "msr": "0.03"}}, headers=ed)
        assert same.json()["version"] == 2  # nothing changed: no new version
        csv = "member_id,enrollment_type\nR1,aged_nondual\nR3,disabled\n"
        r = await http.put("/contracts/API-1/roster", content=csv, headers={**ed, "content-type": "text/csv"})
        assert r.json()["version"] == 3
        r = await http.put("/contracts/API-1/roster", content="member_id\nbad id!\n", headers={**ed, "content-type": "text/csv"})
        assert r.status_code == 422 and "member_id" in r.text and "line 2" in r.text
        r = await http.post("/contracts/API-1/quality", json={"performance_year": 2025, "quality_score": "1.5"}, headers=ed)
        assert r.status_code == 422 and "quality_score" in r.text
        assert (await http.get("/contracts/nope", headers=ed)).status_code == 404

        history = (await http.get("/contracts/API-1/history", headers=ed)).json()
        assert [(h["version"], h["action"]) for h in history] == [(1, "create"), (2, "update"), (3, "roster")]
        assert all(h["actor"] == f"finance (key {editor['key_id']})" for h in history)
        # Rates are written as every event writes them: plain, with the 10 decimals of their scale.
        assert history[1]["changes"]["msr"] == {"from": "0.0200000000", "to": "0.0300000000"}

    contract_events, attribution = await read_events(broker, expect_contracts=3)
    assert [e["payload"]["version"] for e in contract_events] == [1, 2, 3]
    # R1 and R2 at version 1; at version 3 R2 leaves and R3 joins, R1 unchanged (version 2 moved nobody).
    assert sorted((e["payload"]["member_id"], e["payload"]["contract_version"]) for e in attribution) == [
        ("R1", 1), ("R2", 1), ("R2", 3), ("R3", 3)
    ]  # fmt: skip


async def read_events(broker: str, expect_contracts: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    consumer = AIOKafkaConsumer(
        "contracts.v1", "attribution.v1", bootstrap_servers=broker, auto_offset_reset="earliest",
        group_id="test-contract-events", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            found += [json.loads(r.value) for records in batch.values() for r in records]
            mine = [e for e in found if e["event_type"] == "contract.changed" and e["payload"]["contract_id"] == "API-1"]
            if len(mine) >= expect_contracts:
                await asyncio.sleep(1)  # anything extra (a duplicate) would show up now
                batch = await consumer.getmany(timeout_ms=1000)
                found += [json.loads(r.value) for records in batch.values() for r in records]
                break
    finally:
        await consumer.stop()
    contracts = [e for e in found if e["event_type"] == "contract.changed" and e["payload"]["contract_id"] == "API-1"]
    attribution = [e for e in found if e["event_type"] == "attribution.changed" and e["payload"]["contract_id"] == "API-1"]
    return contracts, attribution


async def test_contracts_apply_from_yaml_is_idempotent(service: tuple[str, str], tmp_path: Path) -> None:
    base, admin = service
    port = base.rsplit(":", 1)[1]
    env = {**os.environ, "ACOFLOW_STATE_DIR": str(tmp_path), "ACOFLOW_CONTRACTS_PORT": port, "ACOFLOW_API_KEY": admin}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "acoflow.cli", *args], env=env, capture_output=True, text=True, timeout=60)

    first = await asyncio.to_thread(cli, "contracts", "apply", str(EXAMPLES / "mssp-enhanced.yaml"))
    assert first.returncode == 0 and "created (version 1)" in first.stdout, first.stdout + first.stderr
    again = await asyncio.to_thread(cli, "contracts", "apply", str(EXAMPLES / "mssp-enhanced.yaml"))
    assert "unchanged (version 1)" in again.stdout
    listed = json.loads((await asyncio.to_thread(cli, "contracts", "list", "--json")).stdout)
    assert [(c["contract_id"], sum(c["roster"]["members"].values())) for c in listed] == [("EXAMPLE-MSSP-EN-2026", 4)]
    broken = tmp_path / "broken.yaml"
    broken.write_text((EXAMPLES / "mssp-enhanced.yaml").read_text().replace("track: EN", "track: XX").replace(
        "roster_file: example-roster.csv", "roster_file: " + str(EXAMPLES / "example-roster.csv")))  # fmt: skip
    refused = await asyncio.to_thread(cli, "contracts", "apply", str(broken))
    # Every command reports a service's refusal, and a service it cannot reach, as one error line.
    assert refused.returncode == 1 and refused.stderr.startswith("Error: contracts answered HTTP 422"), refused.stderr
    assert "track: 'XX' is not a MSSP track" in refused.stderr
    history = await asyncio.to_thread(cli, "contracts", "history", "EXAMPLE-MSSP-EN-2026")
    assert history.returncode == 0 and "create" in history.stdout
    missing = await asyncio.to_thread(cli, "contracts", "history", "NO-SUCH-CONTRACT")
    assert missing.returncode == 1 and missing.stderr.startswith("Error: contracts answered HTTP 404"), missing.stderr
    env["ACOFLOW_NOTIFICATIONS_PORT"] = "1"
    unreachable = await asyncio.to_thread(cli, "notifications", "failed")
    assert unreachable.returncode == 1 and unreachable.stderr.startswith("Error: cannot reach notifications"), unreachable.stderr
    assert "Traceback" not in refused.stderr + missing.stderr + unreachable.stderr


async def test_hostile_input_gets_a_4xx_naming_the_field_never_a_500(service: tuple[str, str]) -> None:
    base, admin = service
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        nul_name = await http.post("/keys", json={"name": "a\u0000b", "role": "viewer"}, headers=bearer(admin))
        assert nul_name.status_code == 422 and nul_name.json()["detail"][0]["loc"] == ["body", "name"]
        for path in ("/contracts/A%00B", "/contracts/A%00B/history", "/contracts?x=%01"):
            answer = await http.get(path, headers=bearer(admin))
            assert answer.status_code == 422, (path, answer.text)
            assert answer.json()["detail"][0]["msg"] == "control characters are not allowed"
            assert answer.headers["x-request-id"]
        bad_name = await http.post("/contracts", json={**CONTRACT, "name": "line\nbreak"}, headers=bearer(admin))
        assert bad_name.status_code == 422 and bad_name.json()["detail"][0]["loc"] == ["body", "name"]
        # A roster whose enrollment types the benchmark does not price cannot be settled: refused, naming the member.
        esrd = {**CONTRACT, "roster": [{"member_id": "R1"}, {"member_id": "R9", "enrollment_type": "esrd"}]}
        refused = await http.post("/contracts", json=esrd, headers=bearer(admin))
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"][0]
        assert detail["loc"] == ["body", "roster[1]"] and "R9" in detail["msg"] and "esrd" in detail["msg"]
        assert (await http.get("/contracts/API-1", headers=bearer(admin))).status_code == 404  # nothing saved
        # A JSON number is money as written: 20 digits survive (through float they would come back ...234.123).
        body = json.dumps({**CONTRACT, "roster": []}).replace('"12000.00"', "12345678901234.123456")
        exact = await http.post("/contracts", content=body, headers={**bearer(admin), "content-type": "application/json"})
        assert exact.status_code == 201, exact.text
        assert exact.json()["terms"]["benchmark_per_capita"]["aged_nondual"] == "12345678901234.123456"
        cid = exact.json()["contract_id"]
        # Found by the property-based run (tests/e2e/test_openapi.py), each answered as its document says:
        zero_date = await http.put(f"/contracts/{cid}/roster", json=[{"member_id": "R1", "start": 0}], headers=bearer(admin))
        assert zero_date.status_code == 422 and zero_date.json()["detail"][0]["loc"] == ["body", 0, "start"], zero_date.text
        blank = await http.post(
            f"/contracts/{cid}/quality", json={"performance_year": 2025, "quality_score": ""}, headers=bearer(admin)
        )
        assert blank.status_code == 422 and blank.json()["detail"][0]["loc"][:2] == ["body", "quality_score"]
        malformed = await http.post(
            "/contracts", content=b'{"contract_id": ', headers={**bearer(admin), "content-type": "application/json"}
        )
        assert malformed.status_code == 400 and malformed.json()["detail"][0]["loc"] == ["body"]
        surrogate = await http.post(
            "/keys",
            content=b'{"name": "a\\ud800", "role": "viewer"}',
            headers={**bearer(admin), "content-type": "application/json"},
        )
        assert surrogate.status_code == 422 and surrogate.json()["detail"][0]["loc"] == ["body", "name"], surrogate.text
        assert (await http.post("/keys", json={"name": "auditor", "role": "phi"}, headers=bearer(admin))).status_code == 201
        number = await http.post("/contracts", content=b"1e3", headers={**bearer(admin), "content-type": "application/json"})
        assert number.status_code == 422
        # The documents: public, with the auth scheme; /metrics is text.
        document = (await http.get("/openapi.json")).json()
        assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKeyHeader"}
        assert {"400", "401", "404", "422"} <= set(document["paths"]["/contracts/{contract_id}"]["put"]["responses"])
        assert (await http.get("/docs")).status_code == 200
        events = (await http.get("/asyncapi.json")).json()
        # This service's own: what it reads and writes, and nothing else.
        mine = {"attribution_acks_v1", "contracts_v1", "attribution_v1", "quality_v1", "keys_v1", "deadletter_v1"}
        assert events["asyncapi"].startswith("3.") and set(events["channels"]) == mine
        metrics = await http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


async def test_keys_recover_writes_a_working_admin_key_when_none_is_left(service: tuple[str, str], database: str) -> None:
    from acoflow.cli.admin import _recover_key

    base, _ = service
    key_id, key = await _recover_key(database, "on-call")
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        listed = await http.get("/keys", headers=bearer(key))
        assert listed.status_code == 200 and key_id in {k["key_id"] for k in listed.json()}
    conn = await asyncpg.connect(database)
    try:
        action = await conn.fetchval("SELECT action FROM contracts.audit_log WHERE actor = 'recover:on-call'")
    finally:
        await conn.close()
    assert action == "keys.recover"


def test_a_short_bootstrap_key_is_refused() -> None:
    from pydantic import SecretStr, ValidationError

    with pytest.raises(ValidationError, match="32 characters"):
        Settings(bootstrap_api_key=SecretStr("admin"))
