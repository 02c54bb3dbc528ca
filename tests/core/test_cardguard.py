"""The card-number guard against a brute-force oracle, and the cases the contract names."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge.domain.cardguard import contains_pan, is_separator, luhn_ok


def oracle(text: str) -> bool:
    """Every run of consecutive digit groups joined only by separators, checked one by one."""
    groups = list(re.finditer(r"\d+", text))
    for i in range(len(groups)):
        digits = ""
        for j in range(i, len(groups)):
            if j > i:
                gap = text[groups[j - 1].end() : groups[j].start()]
                if not gap or not all(is_separator(ch) for ch in gap):
                    break
            digits += groups[j].group()
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                return True
    return False


PANS = ["4111111111111111", "5500005555555559", "378282246310005", "6011000990139424"]


@st.composite
def digit_text(draw: st.DrawFn) -> str:
    """Text made of digit groups, separators and a few letters, sometimes around a PAN."""
    parts = draw(
        st.lists(
            st.one_of(
                st.text("0123456789", min_size=1, max_size=8),
                # ASCII whitespace such as \x0b and \x1c separates too, like a Unicode dash
                st.sampled_from([" ", "-", ".", "/", "  ", " - ", "\t", "\x0b", "\x1c", "\u2013"]),
                st.sampled_from(["x", "no", ":", "_", "#"]),
            ),
            max_size=30,
        )
    )
    if draw(st.booleans()):
        pan = draw(st.sampled_from(PANS))
        cuts = sorted(draw(st.lists(st.integers(1, len(pan) - 1), max_size=4, unique=True)))
        seps = [draw(st.sampled_from([" ", "-", ".", "/"])) for _ in cuts]
        pieces, last = [], 0
        for cut, sep in zip(cuts, seps, strict=True):
            pieces += [pan[last:cut], sep]
            last = cut
        parts.insert(draw(st.integers(0, len(parts))), "".join([*pieces, pan[last:]]))
    return "".join(parts)


@given(digit_text())
@settings(max_examples=1000, deadline=None)
@example("note 4111 1111 1111 1111 1228 end")
@example("1228 4111-1111-1111-1111")
@example("41111111111111111228")
def test_guard_agrees_with_brute_force(text: str) -> None:
    assert contains_pan(text) == oracle(text)


@given(st.text(max_size=60))
@settings(max_examples=500, deadline=None)
def test_guard_agrees_on_any_text(text: str) -> None:
    assert contains_pan(text) == oracle(text)


def test_card_numbers_inside_longer_digit_text() -> None:
    assert contains_pan("note 4111 1111 1111 1111 1228 end")
    assert contains_pan("exp 12/28 card 4111.1111.1111.1111/123")
    assert contains_pan("4111/1111/1111/1111")
    assert contains_pan("ref 99 - 4111 1111 1111 1111")
    assert contains_pan("\uff14\uff11\uff11\uff11" + "1111111111111111"[4:])  # full-width
    assert not contains_pan("41111111111111111228"), "one unbroken run of 20 digits"
    assert not contains_pan("4111 1111 1111 1112")
    assert not contains_pan("4111a1111b1111c1111")
    assert not contains_pan("call 555-123-4567 at 10.30")
