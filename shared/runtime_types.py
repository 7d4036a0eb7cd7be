"""The small surface route and handler modules need from a running service (eases testing them alone)."""

from __future__ import annotations

from typing import Protocol

import asyncpg

from shared.unit_of_work import UnitsOfWork


class Pooled(Protocol):
    @property
    def pool(self) -> asyncpg.Pool: ...

    @property
    def units(self) -> UnitsOfWork: ...
