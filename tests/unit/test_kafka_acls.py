"""The production ACLs and what they come from: a payer feed may only write claims, each service writes only its
own topics and reads only what it consumes, as its declaration says (tests/unit/test_declarations.py: each service
wires exactly its declaration)."""

from __future__ import annotations

from click.testing import CliRunner

from acoflow.cli import main
from acoflow.kafka_acls import commands, principals
from shared.topics import ALL_TOPICS


def test_each_principal_writes_only_its_topics() -> None:
    PRINCIPALS = principals()
    by_name = {p.name: p for p in PRINCIPALS}
    assert [t.name for t in by_name["payer"].produces] == ["claims.submitted.v1"] and not by_name["payer"].consumes
    assert "spend.v2" in [t.name for t in by_name["claims_ingest"].produces]
    writers = {t.name for p in PRINCIPALS if p.name != "loader" for t in p.produces if t.internal}
    # No internal topic has two writing services (deadletter.v1 aside, which every service writes).
    for topic in writers - {"deadletter.v1"}:
        assert sum(topic in {t.name for t in p.produces} for p in PRINCIPALS) == 1, topic
    assert {t.name for p in PRINCIPALS for t in (*p.produces, *p.consumes)} == {t.name for t in ALL_TOPICS}


def test_the_command_prints_kafka_acls_lines() -> None:
    run = CliRunner().invoke(main, ["kafka-acls", "--bootstrap", "kafka:9093"])
    assert run.exit_code == 0
    lines = run.output.splitlines()
    assert lines == commands("kafka:9093")
    assert any(
        "--allow-principal User:payer --operation Write --operation Describe --topic claims.submitted.v1" in x for x in lines
    )
    assert not any("User:payer" in x and "spend" in x for x in lines)
    assert any("User:settlement --operation Read --group settlement --resource-pattern-type prefixed" in x for x in lines)


def test_the_compose_init_script_is_what_the_command_prints() -> None:
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "deploy" / "kafka-acls.sh"
    body = [x for x in script.read_text().splitlines() if x.startswith("/opt/kafka")]
    assert body == commands("kafka:9094", "/run/secrets/kafka_admin.properties")


def test_the_readme_table_is_the_wiring() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = {cells[1]: cells[2:4] for line in readme.splitlines() if (cells := [c.strip() for c in line.split("|")])[1:2]}
    for p in principals()[2:]:
        consumes, produces = rows[p.name]
        assert consumes == ", ".join(sorted(t.name for t in p.consumes)), p.name
        assert produces.removesuffix(", webhooks") == ", ".join(t.name for t in p.produces), p.name
