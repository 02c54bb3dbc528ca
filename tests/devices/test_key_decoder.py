"""Layout decoding: the characters a scanner means, on each supported layout, no X server."""

from __future__ import annotations

import pytest
from evdev import ecodes as e

from edge.devices.key_decoder import GS, KeyDecoder
from edge.devices.keymaps import KeymapError, load_keymap

SHIFT, ALTGR, CTRL, ALT = e.KEY_LEFTSHIFT, e.KEY_RIGHTALT, e.KEY_LEFTCTRL, e.KEY_LEFTALT


def press(decoder: KeyDecoder, code: int, *mods: int) -> str:
    out = ""
    for mod in mods:
        out += decoder.feed(mod, 1)
    out += decoder.feed(code, 1)
    out += decoder.feed(code, 0)
    for mod in reversed(mods):
        out += decoder.feed(mod, 0)
    return out


def decoder(layout: str, *, numlock: bool = True) -> KeyDecoder:
    return KeyDecoder(load_keymap(layout), numlock=numlock)


# (key, modifiers, expected) per layout: the positions that differ between layouts.
LAYOUT_FIXTURES = {
    "us": [
        (e.KEY_Y, (), "y"),
        (e.KEY_Q, (), "q"),
        (e.KEY_2, (SHIFT,), "@"),
        (e.KEY_3, (SHIFT,), "#"),
        (e.KEY_MINUS, (), "-"),
        (e.KEY_SLASH, (), "/"),
        (e.KEY_APOSTROPHE, (SHIFT,), '"'),
    ],
    "de": [
        (e.KEY_Y, (), "z"),
        (e.KEY_Z, (), "y"),
        (e.KEY_7, (SHIFT,), "/"),
        (e.KEY_Q, (ALTGR,), "@"),
        (e.KEY_SLASH, (), "-"),
        (e.KEY_E, (ALTGR,), "€"),
        (e.KEY_MINUS, (), "ß"),
        (e.KEY_2, (SHIFT,), '"'),
    ],
    "fr": [
        (e.KEY_Q, (), "a"),
        (e.KEY_A, (), "q"),
        (e.KEY_W, (), "z"),
        (e.KEY_1, (), "&"),
        (e.KEY_1, (SHIFT,), "1"),
        (e.KEY_2, (), "é"),
        (e.KEY_0, (ALTGR,), "@"),
        (e.KEY_6, (), "-"),
    ],
    "gb": [
        (e.KEY_2, (SHIFT,), '"'),
        (e.KEY_3, (SHIFT,), "£"),
        (e.KEY_APOSTROPHE, (SHIFT,), "@"),
        (e.KEY_BACKSLASH, (), "#"),
        (e.KEY_Y, (), "y"),
    ],
}


@pytest.mark.parametrize("layout", sorted(LAYOUT_FIXTURES))
def test_each_layout_decodes_its_own_positions(layout: str) -> None:
    dec = decoder(layout)
    for code, mods, expected in LAYOUT_FIXTURES[layout]:
        assert press(dec, code, *mods) == expected, (layout, code, mods)


@pytest.mark.parametrize("layout", ["us", "de", "fr", "gb"])
def test_group_separator_from_ctrl_bracket_and_alt_code_on_every_layout(layout: str) -> None:
    dec = decoder(layout)
    assert press(dec, e.KEY_RIGHTBRACE, CTRL) == GS
    # Alt+0029 on the keypad, the other convention scanners use for GS
    out = dec.feed(ALT, 1)
    for digit in (e.KEY_KP0, e.KEY_KP0, e.KEY_KP2, e.KEY_KP9):
        out += press(dec, digit)
    out += dec.feed(ALT, 0)
    assert out == GS


@pytest.mark.parametrize(
    ("layout", "dead", "expected"),
    [
        ("de", (e.KEY_GRAVE, ()), "^"),  # de types ^ only as a dead key
        ("de", (e.KEY_EQUAL, (SHIFT,)), "`"),
        ("de", (e.KEY_EQUAL, ()), "\u00b4"),
        ("fr", (e.KEY_LEFTBRACE, ()), "^"),
        ("fr", (e.KEY_LEFTBRACE, (SHIFT,)), "\u00a8"),
    ],
)
def test_dead_keys_compose_as_a_scanner_types_them(
    layout: str, dead: tuple[int, tuple[int, ...]], expected: str
) -> None:
    dec = decoder(layout)
    code, mods = dead
    assert press(dec, code, *mods) == "", "a dead key waits for the next key"
    assert press(dec, e.KEY_SPACE) == expected, "dead key then Space types the accent itself"
    press(dec, code, *mods)
    assert press(dec, code, *mods) == expected, "the dead key twice types it once"
    assert press(dec, e.KEY_X) == "x", "nothing is left pending"


def test_dead_key_composes_with_a_letter() -> None:
    de, fr = decoder("de"), decoder("fr")
    assert press(de, e.KEY_GRAVE) + press(de, e.KEY_E) == "\u00ea"
    assert press(fr, e.KEY_LEFTBRACE, SHIFT) + press(fr, e.KEY_Q, SHIFT) == "\u00c4"
    assert press(de, e.KEY_GRAVE) + press(de, e.KEY_1) == "^1", "no such letter: both kept"


def test_caps_lock_is_per_device_and_toggles() -> None:
    dec, other = decoder("us"), decoder("us")
    press(dec, e.KEY_CAPSLOCK)
    assert press(dec, e.KEY_A) == "A"
    assert press(dec, e.KEY_A, SHIFT) == "a"
    assert press(dec, e.KEY_1) == "1"
    assert press(other, e.KEY_A) == "a", "another scanner's Caps Lock must not leak"
    press(dec, e.KEY_CAPSLOCK)
    assert press(dec, e.KEY_A) == "a"


def test_numlock_decides_keypad_digits() -> None:
    assert press(decoder("us", numlock=True), e.KEY_KP7) == "7"
    off = decoder("us", numlock=False)
    assert press(off, e.KEY_KP7) == ""
    press(off, e.KEY_NUMLOCK)
    assert press(off, e.KEY_KP7) == "7"


def test_terminators_and_autorepeat() -> None:
    dec = decoder("de")
    assert press(dec, e.KEY_ENTER) == "\r"
    assert press(dec, e.KEY_KPENTER) == "\r"
    assert press(dec, e.KEY_TAB) == "\t"
    assert dec.feed(e.KEY_A, 1) == "a"
    assert dec.feed(e.KEY_A, 2) == "", "autorepeat must not duplicate characters"
    assert dec.feed(e.KEY_A, 0) == ""


def test_other_ctrl_chords_are_ignored_and_counted() -> None:
    dec = decoder("us")
    assert press(dec, e.KEY_C, CTRL) == ""
    assert dec.ignored_chords == 1


def test_resync_keeps_locks_and_takes_held_keys_from_kernel() -> None:
    dec = decoder("us")
    press(dec, e.KEY_CAPSLOCK)
    dec.feed(SHIFT, 1)  # the release of Shift is lost with the dropped events
    dec.resync(held_keys=[])
    assert press(dec, e.KEY_B) == "B", "Caps Lock survives, the stale Shift does not"
    dec.resync(held_keys=[SHIFT])
    assert press(dec, e.KEY_B) == "b"


def test_unknown_layout_variant_is_a_keymap_error() -> None:
    with pytest.raises(KeymapError):
        load_keymap("us", "no-such-variant")
