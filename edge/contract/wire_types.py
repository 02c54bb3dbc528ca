"""Field types every payload model of the contract shares: the base model, times and money.

Written once so that each model says a time or an amount the same way, on input (what a
receiver accepts) and on output (the exact text a sender puts on the wire).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

from edge.contract.timefmt import iso


class WireModel(BaseModel):
    """A payload of the contract. Unknown fields are ignored, so either side may add fields
    (the contract changes only by adding); a missing or mistyped field is an error."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# An RFC 3339 time with its offset (a time without one is refused: whose clock?), written
# back as the ledger writes it, UTC to the millisecond (`2026-11-22T10:15:00.000Z`).
Instant = Annotated[
    AwareDatetime,
    PlainSerializer(iso, return_type=str, when_used="json"),
]

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
# Sign, digits and point of one amount: far above any real amount, low enough that a
# receiver never turns a megabyte of digits into a Decimal.
AMOUNT_TEXT_MAX = 32
_DECIMAL_RE = re.compile(DECIMAL_PATTERN)


def _decimal_text(value: object) -> Decimal:
    """Money arrives as decimal text; a JSON number (a float by the time anyone reads it)
    is refused, never rounded into an amount."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("an amount must be a finite decimal")
        return value
    if not isinstance(value, str):
        raise ValueError('an amount must be a decimal string such as "19.99", not a number')
    if len(value) > AMOUNT_TEXT_MAX or _DECIMAL_RE.fullmatch(value) is None:
        raise ValueError(f'an amount must be a decimal string such as "19.99": {value[:40]!r}')
    try:
        return Decimal(value)
    except InvalidOperation:  # unreachable after the pattern; kept so nothing else escapes
        raise ValueError(f"not a decimal: {value[:40]!r}") from None


def _decimal_out(value: Decimal) -> str:
    # fixed-point always: str(Decimal("1E+2")) would be "1E+2"
    return format(value, "f")


# Money: `Decimal` in code, decimal text on the wire (`"19.99"`, `"-0.50"`, `"1200"`).
Amount = Annotated[
    Decimal,
    PlainValidator(_decimal_text),
    PlainSerializer(_decimal_out, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DECIMAL_PATTERN,
            "maxLength": AMOUNT_TEXT_MAX,
            "description": "Decimal string in the currency's units, never a JSON number",
            "examples": ["19.99"],
        }
    ),
]

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD"])]
