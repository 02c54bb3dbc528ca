"""Money as `Decimal` in each currency's ISO 4217 minor unit; never float.

Splits work in integer minor units with the largest-remainder method, so the parts
always add up to the whole to the last minor unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from functools import cache

from edge.domain.currencies import MINOR_UNITS
from edge.domain.errors import DomainError

ZERO = Decimal(0)


class MoneyError(DomainError, ValueError):
    """An amount or currency that money cannot be made of; a ValueError too, so a pydantic
    validator that meets one reports it as the field's error."""


@cache
def currency_exponent(code: str) -> int:
    """ISO 4217 minor-unit exponent (USD 2, JPY 0, KWD 3); refuses non-monetary codes."""
    if code not in MINOR_UNITS:
        msg = f"{code!r} is not an ISO 4217 currency code"
        raise MoneyError(msg)
    exponent = MINOR_UNITS[code]
    if exponent is None:
        msg = f"{code} has no minor unit (not a currency that can be refunded)"
        raise MoneyError(msg)
    return int(exponent)


@cache
def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-currency_exponent(currency))


def parse_amount(text: str, currency: str) -> Decimal:
    """A decimal string that fits the currency's exponent, as a Decimal at that exponent."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        msg = 'must be a decimal string such as "19.99"'
        raise MoneyError(msg) from None
    if not value.is_finite():
        msg = "must be a finite amount"
        raise MoneyError(msg)
    exp = currency_exponent(currency)
    as_tuple = value.as_tuple()
    if isinstance(as_tuple.exponent, int) and -as_tuple.exponent > exp:
        normalized = value.normalize()
        norm_exp = normalized.as_tuple().exponent
        if isinstance(norm_exp, int) and -norm_exp > exp:
            msg = f"{currency} amounts have at most {exp} decimal places"
            raise MoneyError(msg)
    return value.quantize(quantum(currency))


def fmt(amount: Decimal, currency: str) -> str:
    """The contract's wire form: a plain decimal string at the currency's exponent."""
    return f"{amount.quantize(quantum(currency)):f}"


def to_minor(amount: Decimal, currency: str) -> int:
    scaled = amount.scaleb(currency_exponent(currency))
    if scaled != scaled.to_integral_value():
        msg = f"{amount} is not a whole number of {currency} minor units"
        raise MoneyError(msg)
    return int(scaled)


def from_minor(units: int, currency: str) -> Decimal:
    # A whole number scaled by the exponent is already at it: 1999 -> 19.99, 0 -> 0.00.
    return Decimal(units).scaleb(-currency_exponent(currency))


def split_by_weights(total: Decimal, weights: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Split `total` in proportion to `weights`, exact to the minor unit (largest remainder).

    Ties in the remainder go to the earlier part, so the split is deterministic.
    All-zero weights put nothing anywhere, and a zero total splits into zeros.
    """
    units = to_minor(total, currency)
    weight_sum = sum(weights, ZERO)
    if units == 0 or weight_sum == 0:
        if units != 0:
            msg = "cannot split a non-zero amount over zero weights"
            raise MoneyError(msg)
        return [from_minor(0, currency) for _ in weights]
    exact = [Decimal(units) * w / weight_sum for w in weights]
    floors = [int(x.to_integral_value(rounding=ROUND_DOWN)) for x in exact]
    left = units - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [from_minor(u, currency) for u in floors]


def split_evenly(total: Decimal, parts: int, currency: str) -> list[Decimal]:
    """`total` over `parts` equal shares; the first shares carry the extra minor units."""
    if parts <= 0:
        msg = "parts must be positive"
        raise MoneyError(msg)
    return split_by_weights(total, [Decimal(1)] * parts, currency)


def even_share_slice(total: Decimal, parts: int, start: int, count: int, currency: str) -> Decimal:
    """Sum of shares `start`..`start+count-1` of `split_evenly(total, parts)`, in O(1).

    The split gives every share `total // parts` minor units and the first
    `total % parts` shares one unit more, so any run of shares sums in closed form.
    """
    if parts <= 0 or start < 0 or count < 0 or start + count > parts:
        msg = "share range out of bounds"
        raise MoneyError(msg)
    units = to_minor(total, currency)
    base, extra = divmod(units, parts)
    with_extra = max(0, min(start + count, extra) - start)
    return from_minor(base * count + with_extra, currency)
