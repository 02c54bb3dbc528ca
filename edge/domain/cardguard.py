"""Refuse anything that looks like a card number (PAN) in free text and tender fields.

Text is read as digit groups (maximal runs of digits) chained by separators: spaces,
dashes, dots or slashes between two groups keep them in one chain, anything else ends
it. Any run of consecutive whole groups in a chain that holds 13-19 digits in all and
passes the Luhn check is a PAN, whatever groups surround it, so a card number followed
by its expiry (`4111 1111 1111 1111 1228`) is still seen. One unbroken run of 20 or more
digits is not a card number. Identifier fields with their own format (GTIN, SKU, ids)
are not checked: about one product code in ten is Luhn-valid by chance.

The scan is linear: each group starts at most 19 windows, and prefix sums give each
window's Luhn sum in constant time.
"""

from __future__ import annotations

import re
import unicodedata

MIN_PAN_DIGITS = 13
MAX_PAN_DIGITS = 19

_GROUP = re.compile(r"\d+")
# In ASCII text the separators are whitespace, dots, slashes and the hyphen (the one ASCII
# dash), so a chain of 13 or more digits is 13 digits with only separators between them.
_ASCII_CHAIN = re.compile(rf"(?:[0-9][\s./-]*){{{MIN_PAN_DIGITS}}}")
# Luhn value of a digit in a doubled position: 2d, less 9 when that has two digits.
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def is_separator(ch: str) -> bool:
    """Characters that keep two digit groups in one chain: spaces, dashes, dots, slashes."""
    return ch.isspace() or ch in "./" or unicodedata.category(ch) == "Pd"


def _digit(ch: str) -> int:
    """Any Unicode decimal digit (a full-width 4 is still a 4 to whoever reads it)."""
    return unicodedata.decimal(ch)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = _digit(ch)
        total += _DOUBLED[d] if i % 2 == 1 else d
    return total % 10 == 0


def _chains(text: str) -> list[list[str]]:
    """The digit groups of `text`, split where anything but separators lies between them."""
    chains: list[list[str]] = []
    last_end = -1
    for match in _GROUP.finditer(text):
        gap = text[last_end : match.start()]
        if chains and gap and all(is_separator(ch) for ch in gap):
            chains[-1].append(match.group())
        else:
            chains.append([match.group()])
        last_end = match.end()
    return chains


def _chain_has_pan(groups: list[str]) -> bool:
    digits = [_digit(ch) for group in groups for ch in group]
    # even[k] / odd[k]: Luhn sum of digits[:k] when the digits at even / odd positions
    # are the doubled ones. In a window ending at position `last`, the doubled positions
    # are those of the other parity than `last`.
    even = [0]
    odd = [0]
    for pos, d in enumerate(digits):
        even.append(even[-1] + (_DOUBLED[d] if pos % 2 == 0 else d))
        odd.append(odd[-1] + (d if pos % 2 == 0 else _DOUBLED[d]))
    starts = []
    pos = 0
    for group in groups:
        starts.append(pos)
        pos += len(group)
    ends = [*starts[1:], pos]
    for i, start in enumerate(starts):
        for end in ends[i:]:
            length = end - start
            if length > MAX_PAN_DIGITS:
                break
            if length < MIN_PAN_DIGITS:
                continue
            sums = odd if (end - 1) % 2 == 0 else even
            if (sums[end] - sums[start]) % 10 == 0:
                return True
    return False


def contains_pan(text: str) -> bool:
    """Whether any window of whole digit groups in `text` is a Luhn-valid 13-19 digit PAN."""
    if len(text) < MIN_PAN_DIGITS or (text.isascii() and not _ASCII_CHAIN.search(text)):
        return False  # no chain of 13 digits: what most keys, ids and notes are
    return any(
        _chain_has_pan(chain)
        for chain in _chains(text)
        if sum(len(group) for group in chain) >= MIN_PAN_DIGITS
    )
