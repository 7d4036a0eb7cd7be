"""Text that can be stored and shown: free-text fields and HTTP paths refuse control characters (PostgreSQL
cannot store a NUL, and the others hide in logs and screens)."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

# Lone surrogates (JSON's "\ud800") are refused with the controls: they are not text UTF-8 can hold.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
CONTROL_MESSAGE = "control characters are not allowed"


def has_control(value: str, *, allow_breaks: bool = False) -> bool:
    return (CONTROL if allow_breaks else CONTROL_OR_BREAK).search(value) is not None


def _single_line(value: str) -> str:
    if has_control(value):
        raise ValueError(CONTROL_MESSAGE)
    return value


# A name, label or source: one line of printable text.
Text = Annotated[str, AfterValidator(_single_line)]


def _calendar_date(value: object) -> object:
    # pydantic reads a number as seconds since 1970 (0 -> 1970-01-01): a roster start of 0 is a mistake to refuse.
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        raise ValueError("a date is written YYYY-MM-DD, not as a number")
    return value


# A calendar date as people and files write it: ISO text (or a date), never a number.
CalendarDate = Annotated[date, BeforeValidator(_calendar_date), WithJsonSchema({"type": "string", "format": "date"})]


def _timestamp(value: object) -> object:
    # pydantic reads a number, or a numeric string in a query, as seconds since 1970: refuse both.
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        raise ValueError("a date-time is written as ISO 8601 text, not as a number")
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("a date-time is written as ISO 8601 text, not as a number")
    return value


# A date-time as ISO 8601 text (or a datetime), never a number of seconds.
Timestamp = Annotated[datetime, BeforeValidator(_timestamp), WithJsonSchema({"type": "string", "format": "date-time"})]
