"""Text that can be stored and shown: free-text fields and HTTP paths refuse control characters (PostgreSQL
cannot store a NUL, and the others hide in logs and screens)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_MESSAGE = "control characters are not allowed"


def has_control(value: str, *, allow_breaks: bool = False) -> bool:
    return (CONTROL if allow_breaks else CONTROL_OR_BREAK).search(value) is not None


def _single_line(value: str) -> str:
    if has_control(value):
        raise ValueError(CONTROL_MESSAGE)
    return value


# A name, label or source: one line of printable text.
Text = Annotated[str, AfterValidator(_single_line)]
