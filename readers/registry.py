"""Which loader reads a file: by --format, else by file name and content."""

from __future__ import annotations

import zipfile
from pathlib import Path

from readers.base import Loader
from readers.cclf import CclfLoader
from readers.fhir import FhirLoader
from readers.jsonl import JsonlLoader
from readers.tuva import TuvaLoader

# Order matters: the first that recognises a file reads it.
LOADERS: tuple[Loader, ...] = (CclfLoader(), FhirLoader(), TuvaLoader(), JsonlLoader())


def loader_for(path: Path, name: str | None) -> Loader:
    if name is not None:
        for loader in LOADERS:
            if loader.name == name:
                return loader
        raise ValueError(f"--format: unknown format {name!r} (known: {', '.join(x.name for x in LOADERS)})")
    head = b""
    if not zipfile.is_zipfile(path):
        with path.open("rb") as handle:
            head = handle.read(4096)
    for loader in LOADERS:
        if loader.detect(path, head):
            return loader
    raise ValueError(f"{path}: cannot tell the format from its name or content; pass --format")


def plan(paths: list[Path], name: str | None) -> list[tuple[Loader, list[Path]]]:
    """Group files by loader, keeping first-seen order: a loader reads its files as one set (a CCLF
    month needs its CCLF9 and CCLF0; FHIR EOBs need the Patient resources beside them)."""
    groups: dict[str, tuple[Loader, list[Path]]] = {}
    for path in paths:
        loader = loader_for(path, name)
        groups.setdefault(loader.name, (loader, []))[1].append(path)
    return list(groups.values())
