"""Field types shared by request models: money strings, ids, guarded free text."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StrictBool, StrictInt, StringConstraints

from edge.domain.cardguard import contains_pan

PAN_MESSAGE = "looks like a card number; send a processor payment token, never a card number"
# The largest amount in minor units: with at most 500 lines and 20 tenders, every sum the
# ledger keeps stays far inside SQLite's 64-bit INTEGER.
MAX_MINOR_UNITS = 10**15
MAX_QUANTITY = 100_000


def _no_pan(value: str) -> str:
    if contains_pan(value):
        raise ValueError(PAN_MESSAGE)
    return value


MoneyStr = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,15}(\.[0-9]{1,6})?$"),
    Field(description='Decimal string in the sale\'s currency, e.g. "19.99"', examples=["19.99"]),
]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64)]
FreeText = Annotated[str, StringConstraints(max_length=500), AfterValidator(_no_pan)]
TenderText = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_no_pan)
]
CurrencyStr = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# An opaque, pseudonymous customer id (a loyalty id or a hash): the charset leaves no room
# for an e-mail address or a spaced-out name, and the guard refuses a card number.
CUSTOMER_REF_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
CustomerRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=CUSTOMER_REF_PATTERN),
    AfterValidator(_no_pan),
    Field(
        description="Opaque pseudonymous customer id (loyalty id or hash), 1-64 chars of"
        " [A-Za-z0-9._:-]; never a name, e-mail or card number",
        examples=["loyalty:7f3a9c"],
    ),
]
# JSON `true` or `"2"` is not a count of units, and `"false"` is not a flag.
Quantity = Annotated[StrictInt, Field(gt=0, le=MAX_QUANTITY)]
Flag = StrictBool


def gtin_ok(value: str) -> str:
    """A GTIN as the register sent it, if biip (through `parse_gtin`) takes it; the
    message never echoes the value."""
    # biip is imported by the first GTIN checked, not at start: it is ~17 MiB, a third of an
    # idle gateway's memory, and only sales that carry GTINs need it.
    from edge.scan.gs1 import parse_gtin  # noqa: PLC0415

    if parse_gtin(value) is None:
        msg = "not a GTIN: 8, 12, 13 or 14 digits ending in a valid check digit"
        raise ValueError(msg)
    return value


Gtin = Annotated[str, AfterValidator(gtin_ok)]
