"""`acoflow`: run the embedded stack, load claim files, read positions, settle PUF rows, run the demo. One module
per command group; this one gathers them."""

from __future__ import annotations

import click

from acoflow.cli.admin import contracts, keys
from acoflow.cli.analysis import benchmark, settle_puf
from acoflow.cli.deploy import asyncapi, kafka_acls
from acoflow.cli.load import load
from acoflow.cli.notifications import notifications, reconcile
from acoflow.cli.positions import position, what_if
from acoflow.cli.rejects import rejects
from acoflow.cli.stack import demo, status, up


@click.group()
def main() -> None:
    """acoflow: contract and risk management for value-based care."""


for command in (up, status, load, contracts, keys, rejects, position, what_if, notifications, reconcile, benchmark,
                asyncapi, kafka_acls, settle_puf, demo):  # fmt: skip
    main.add_command(command)
