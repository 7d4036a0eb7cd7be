"""API keys and roles, with no I/O: how keys look, how they are hashed, what each role may do."""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")
PREFIX = "acf_"


def new_key() -> tuple[str, str]:
    """(key id, key): the id is public (it names the key in lists and audit records), the key is secret."""
    key_id = secrets.token_hex(4)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def allows(role: Role, required: Role) -> bool:
    """Roles nest: an admin may do what an editor may, an editor what a viewer may."""
    return ROLES.index(role) >= ROLES.index(required)
