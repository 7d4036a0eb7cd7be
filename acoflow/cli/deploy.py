"""`acoflow`: What production is installed from: the AsyncAPI document and the broker ACLs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from acoflow.cli.common import console


@click.command()
@click.option("--out", "output", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/asyncapi.json"),
              show_default=True)  # fmt: skip
def asyncapi(output: Path) -> None:
    """Write the AsyncAPI 3.0 document of every topic (events, keys, who writes and reads them), and one JSON
    Schema per event type beside it (schemas/<event type>.json)."""
    from acoflow.kafka_acls import principals
    from shared.asyncapi import document, event_schemas

    output.write_text(json.dumps(document(principals()), indent=2, default=str) + "\n")
    folder = output.parent / "schemas"
    folder.mkdir(exist_ok=True)
    for event_type, schema in event_schemas().items():
        (folder / f"{event_type}.json").write_text(json.dumps(schema, indent=2, default=str) + "\n")
    console.print(f"wrote {output} and {folder}/")


@click.command("kafka-acls")
@click.option("--bootstrap", default="kafka:9093", show_default=True, help="the broker's admin listener")
@click.option("--command-config", default="/etc/kafka/admin.properties", show_default=True)
def kafka_acls(bootstrap: str, command_config: str) -> None:
    """Print the production broker's topics (kafka-topics.sh) and ACLs (each principal writes only its topics,
    reads only what it consumes; kafka-acls.sh), for the compose init step to run."""
    from acoflow.kafka_acls import commands

    for line in commands(bootstrap, command_config):
        click.echo(line)
