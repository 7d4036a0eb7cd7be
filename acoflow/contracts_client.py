"""`acoflow contracts apply`: a contract from YAML (and a roster CSV beside it), applied through the contracts API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from acoflow.clients import ServiceClient
from services.contracts.domain.roster import parse_roster_csv

TOP_LEVEL = {"contract_id", "name", "payer", "terms", "roster", "roster_file", "quality"}


class ContractFileError(click.ClickException):
    """A contract file that cannot be applied as it stands (reported like a service's error)."""


def read_contract_file(path: Path) -> dict[str, Any]:
    """A contract as YAML: contract_id, name, payer, terms, and optionally roster (a list) or roster_file
    (a CSV beside the YAML), and quality results."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContractFileError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ContractFileError(f"{path}: expected a mapping with contract_id, name, payer and terms")
    unknown = set(doc) - TOP_LEVEL
    if unknown:
        raise ContractFileError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(TOP_LEVEL)})")
    missing = {"contract_id", "name", "payer", "terms"} - set(doc)
    if missing:
        raise ContractFileError(f"{path}: missing {sorted(missing)}")
    if "roster" in doc and "roster_file" in doc:
        raise ContractFileError(f"{path}: give roster or roster_file, not both")
    if "roster_file" in doc:
        roster_path = path.parent / str(doc.pop("roster_file"))
        try:
            members = parse_roster_csv(roster_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ContractFileError(f"{roster_path}: {exc}") from exc
        doc["roster"] = [m.model_dump(mode="json", exclude_none=True) for m in members]
    return doc


def apply(api: ServiceClient, doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Create the contract, or make a new version of it; nothing happens when nothing changed."""
    contract_id = str(doc["contract_id"])
    quality = doc.get("quality") or []
    body = {k: v for k, v in doc.items() if k not in ("quality",)}
    before = api.get(f"/contracts/{contract_id}", missing_ok=True)
    if before is None:
        state = api.post("/contracts", body)
        action = "created"
    else:
        state = api.put(f"/contracts/{contract_id}", {k: v for k, v in body.items() if k != "contract_id"})
        action = "unchanged" if state["version"] == before["version"] else "updated"
    for q in quality:
        api.post(f"/contracts/{contract_id}/quality", q)
    return action, state
