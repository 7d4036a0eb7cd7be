"""The CLI's side of the contracts API: the authenticated client, and `contracts apply` from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

from services.contracts.domain.roster import parse_roster_csv

TOP_LEVEL = {"contract_id", "name", "payer", "terms", "roster", "roster_file", "quality"}


class ContractFileError(ValueError):
    pass


class ApiError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if isinstance(detail, list):
            detail = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', []) if p != 'body')}: {d.get('msg')}"
                for d in detail
                if isinstance(d, dict)
            )
        super().__init__(f"HTTP {response.status_code}: {detail}")


def client(base_url: str, api_key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60)


def checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise ApiError(response)
    return response.json()


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


def apply(api: httpx.Client, doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Create the contract, or make a new version of it; nothing happens when nothing changed."""
    contract_id = str(doc["contract_id"])
    quality = doc.get("quality") or []
    body = {k: v for k, v in doc.items() if k not in ("quality",)}
    current = api.get(f"/contracts/{contract_id}")
    if current.status_code == 404:
        state = checked(api.post("/contracts", json=body))
        action = "created"
    else:
        before = checked(current)
        state = checked(api.put(f"/contracts/{contract_id}", json={k: v for k, v in body.items() if k != "contract_id"}))
        action = "unchanged" if state["version"] == before["version"] else "updated"
    for q in quality:
        checked(api.post(f"/contracts/{contract_id}/quality", json=q))
    return action, state
