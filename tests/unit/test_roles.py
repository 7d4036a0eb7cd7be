"""Roles: viewer < editor < admin; the phi role reads what a viewer reads and PHI, which only admins also read."""

from __future__ import annotations

from shared.auth import allows


def test_roles_nest_and_phi_stands_apart() -> None:
    assert allows("admin", "editor") and allows("editor", "viewer") and not allows("viewer", "editor")
    assert allows("phi", "viewer") and allows("phi", "phi") and allows("admin", "phi")
    assert not allows("editor", "phi") and not allows("viewer", "phi") and not allows("phi", "editor")
