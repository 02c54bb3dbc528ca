"""Refuse anything that looks like a card number (PAN) in free text and tender fields.

A maximal run of 13-19 digits, with single spaces or dashes allowed between digits,
that passes the Luhn check is treated as a PAN. Identifier fields with their own format
(GTIN, SKU, ids) are not checked: about one product code in ten is Luhn-valid by chance.
"""

from __future__ import annotations

import re

_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d)*")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def contains_pan(text: str) -> bool:
    for match in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return True
    return False
