"""Money and rates as Decimal, with the rounding steps the methodology names."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Final

from pydantic import Field

CENT: Final = Decimal("0.01")
ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)

# Sources can carry sub-cent amounts; they are kept exact (6 places) and only rounded at named steps.
Money = Annotated[Decimal, Field(max_digits=20, decimal_places=6, allow_inf_nan=False)]
# Rates and shares (sharing rate, MSR, discount...): fractions, never percentages.
Rate = Annotated[Decimal, Field(max_digits=12, decimal_places=10, allow_inf_nan=False)]


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
