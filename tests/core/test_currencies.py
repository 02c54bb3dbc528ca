"""The gateway's table of ISO 4217 minor units is the ISO list, code for code."""

from __future__ import annotations

import pytest
from iso4217 import Currency

from edge.domain.currencies import MINOR_UNITS
from edge.domain.money import MoneyError, currency_exponent


def test_the_table_is_the_iso_4217_list() -> None:
    assert dict(MINOR_UNITS) == {c.code: c.exponent for c in Currency}


def test_exponents_and_refusals() -> None:
    assert [currency_exponent(c) for c in ("USD", "JPY", "KWD", "CLF")] == [2, 0, 3, 4]
    with pytest.raises(MoneyError, match="not an ISO 4217 currency code"):
        currency_exponent("usd")
    with pytest.raises(MoneyError, match="no minor unit"):
        currency_exponent("XAU")
