"""Money and rates as Decimal, with the rounding steps the methodology names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any, Final

from pydantic import Field, GetJsonSchemaHandler, PlainSerializer, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue

CENT: Final = Decimal("0.01")
ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)

MONEY_SCALE: Final = 6
RATE_SCALE: Final = 10


def plain(scale: int) -> Callable[[Decimal], str]:
    """How a decimal of this scale is written in JSON: one canonical string per value, plain notation with
    exactly `scale` decimals ("0.000000", never "0E-10", "0" or "-0.00"), so every field reads the same in
    every event. A value with more decimals than its scale is refused, never rounded."""
    quantum = Decimal(1).scaleb(-scale)

    def render(value: Decimal) -> str:
        exact = value.quantize(quantum)
        if exact != value:
            raise ValueError(f"{value} has more than {scale} decimals")
        return f"{abs(exact) if exact == 0 else exact:f}"

    return render


# A decimal as text, as it is read: what Decimal() takes, less NaN and infinities (an empty string is not one).
DECIMAL_TEXT: Final = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"


@dataclass(frozen=True)
class _ReadAs:
    """pydantic's schema of what is read (a number or a string), with the string's form stated."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        if handler.mode == "validation":
            for alternative in schema.get("anyOf", []):
                if alternative.get("type") == "string":
                    alternative["pattern"] = DECIMAL_TEXT
        return schema


def _decimal(scale: int, max_digits: int, description: str) -> Any:
    pattern = rf"^-?[0-9]+\.[0-9]{{{scale}}}$"
    return (
        Field(max_digits=max_digits, decimal_places=scale, allow_inf_nan=False),
        PlainSerializer(plain(scale), return_type=str, when_used="json"),
        # What is written; what is read (a JSON number or a decimal string) stays pydantic's own schema.
        WithJsonSchema({"type": "string", "pattern": pattern, "description": description}, mode="serialization"),
        _ReadAs(),
    )


# Sources can carry sub-cent amounts; they are kept exact (6 places) and only rounded at named steps.
Money = Annotated[Decimal, *_decimal(MONEY_SCALE, 20, "money in dollars: a plain decimal string with 6 decimals")]
# A count that may be fractional (person-years: member-months / 12), written like money.
Quantity = Annotated[Decimal, *_decimal(MONEY_SCALE, 20, "a fractional count: a plain decimal string with 6 decimals")]
# Rates and shares (sharing rate, MSR, discount...): fractions, never percentages.
Rate = Annotated[Decimal, *_decimal(RATE_SCALE, 12, "a fraction (0.02 is 2%): a plain decimal string with 10 decimals")]


def to_cents(amount: Decimal) -> Decimal:
    """The one rounding step for amounts paid or owed: half away from zero, to the cent."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_decimal(text: str, field: str) -> Decimal:
    """Parse a textual amount exactly; a clear error names the field when it is not a finite number."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError(f"{field}: {text!r} is not a number") from exc
    if not value.is_finite():
        raise ValueError(f"{field}: {text!r} is not a finite number")
    return value
