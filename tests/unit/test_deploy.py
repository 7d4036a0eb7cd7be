"""What operators and downstream teams get: Prometheus alert rules that promtool accepts, a Grafana dashboard
whose queries name metrics the services export, and the AsyncAPI document of every topic, kept current."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from acoflow.kafka_acls import principals
from shared.asyncapi import document
from shared.service import instrument_http
from shared.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def exported_metrics() -> set[str]:
    names: set[str] = set()
    for path in [*ROOT.glob("shared/*.py"), *ROOT.glob("services/*/*.py")]:
        names |= set(re.findall(r'"(acoflow_[a-z_]+)"', path.read_text()))
    # The HTTP metrics come from prometheus-fastapi-instrumentator: ask it what it registers.
    app = FastAPI()
    registry = CollectorRegistry()
    instrument_http(app, registry)

    @app.get("/x")
    def x() -> dict[str, str]:
        return {}

    async def call() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            await client.get("/x")

    asyncio.run(call())
    names |= {sample.name for metric in registry.collect() for sample in metric.samples}
    assert "acoflow_http_request_duration_seconds_bucket" in names
    return {n.removesuffix("_total") for n in names} | names


def referenced(text: str) -> set[str]:
    return {m.removesuffix("_total") for m in re.findall(r"\b(acoflow_[a-z_]+)", text)}


def test_promtool_accepts_the_rules_and_the_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (make test installs Debian's prometheus package)"
    rules = subprocess.run([promtool, "check", "rules", str(DEPLOY / "prometheus-rules.yml")], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = tmp_path / "prometheus.yml"
    (tmp_path / "rules.yml").write_text((DEPLOY / "prometheus-rules.yml").read_text())
    config.write_text((DEPLOY / "prometheus.yml").read_text().replace("/etc/prometheus/rules.yml", str(tmp_path / "rules.yml")))
    checked = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rules_and_dashboard_name_only_metrics_the_services_export() -> None:
    exported = {n.removesuffix("_total") for n in exported_metrics()}
    rules = (DEPLOY / "prometheus-rules.yml").read_text()
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "acoflow.json").read_text())
    expressions = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    assert referenced(rules) <= exported, referenced(rules) - exported
    assert referenced(expressions) <= exported, referenced(expressions) - exported
    assert dashboard["panels"] and all(p["datasource"]["uid"] == "prometheus" for p in dashboard["panels"])


def test_asyncapi_document_covers_every_topic_and_is_current() -> None:
    doc = document(principals())
    assert doc["asyncapi"].startswith("3.") and {c["address"] for c in doc["channels"].values()} == {t.name for t in ALL_TOPICS}
    position = doc["components"]["schemas"]["SettlementPosition"]
    assert "projected_shared_savings_losses" in position["properties"]
    published = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    assert published == json.loads(json.dumps(doc, default=str)), "docs/asyncapi.json is stale: run acoflow asyncapi"


def test_committed_event_schemas_are_current_and_changes_to_them_are_compatible() -> None:
    from shared.asyncapi import breaking_changes, event_schemas

    current = json.loads(json.dumps(event_schemas(), default=str))
    folder = ROOT / "docs" / "schemas"
    committed = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert set(committed) == set(current)
    for event_type, schema in committed.items():
        assert breaking_changes(schema, current[event_type]) == [], event_type
    assert committed == current, "docs/schemas is stale: run acoflow asyncapi"


def test_breaking_changes_are_found() -> None:
    from shared.asyncapi import breaking_changes

    old = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"enum": ["x", "y"]}}, "required": ["a"]}
    assert breaking_changes(old, {**old, "properties": {**old["properties"], "c": {"type": "string"}}}) == []
    renamed = {**old, "properties": {"b": old["properties"]["b"]}}
    assert breaking_changes(old, renamed) == ["$.a: removed"]
    retyped = {**old, "properties": {"a": {"type": "integer"}, "b": {"enum": ["x"]}}, "required": ["a", "b"]}
    assert breaking_changes(old, retyped) == [
        "$.a: type string became integer",
        "$.b: enum value 'y' removed",
        "$.b: now required",
    ]
    nullable = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert breaking_changes({"anyOf": [{"type": "string"}]}, nullable) == ["$: may now be null"]
    assert breaking_changes(nullable, nullable) == []
    decimal_in = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": "^[0-9.]+$"}]}
    canonical = {"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{6}$"}
    assert breaking_changes(decimal_in, canonical) == []  # narrower: a consumer of either form reads it
    assert breaking_changes(canonical, decimal_in) == ["$: may now be number"]


def test_the_embedded_broker_is_the_kafka_production_runs() -> None:
    from acoflow.kafka_node import kafka_version

    images = re.findall(r"image: apache/kafka:(\S+)", (ROOT / "docker-compose.yml").read_text())
    assert images and set(images) == {kafka_version()}, f"docker-compose.yml runs {images}, the embedded node {kafka_version()}"
