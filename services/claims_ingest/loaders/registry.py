"""Which loader reads a file: by --format, else by file name and content."""

from __future__ import annotations

from pathlib import Path

from services.claims_ingest.loaders.base import Loader
from services.claims_ingest.loaders.jsonl import JsonlLoader

LOADERS: tuple[Loader, ...] = (JsonlLoader(),)


def loader_for(path: Path, name: str | None) -> Loader:
    if name is not None:
        for loader in LOADERS:
            if loader.name == name:
                return loader
        raise ValueError(f"--format: unknown format {name!r} (known: {', '.join(x.name for x in LOADERS)})")
    with path.open("rb") as handle:
        head = handle.read(4096)
    for loader in LOADERS:
        if loader.detect(path, head):
            return loader
    raise ValueError(f"{path}: cannot tell the format; pass --format")
