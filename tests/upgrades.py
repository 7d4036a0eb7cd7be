"""An install as it stood before a migration: the service's migrations up to (not including) it, in a directory
of their own that apply_migrations can run."""

from __future__ import annotations

import shutil
from pathlib import Path


def migrations_before(migrations: Path, first_left_out: str, into: Path) -> Path:
    into.mkdir()
    for path in sorted(migrations.glob("*.sql")):
        if path.name < first_left_out:
            shutil.copy(path, into)
    return into
