"""Per-device key decoding: evdev key codes in, text out, with the scanner's own modifiers.

Each scanner gets its own xkb state, so Shift, Caps Lock, NumLock and AltGr pressed by one
device never leak into another (or into the store PC's keyboard). Two scanner conventions
for GS1's group separator are understood on every layout: Ctrl+] and Alt+0029 on the
keypad (Windows-style Alt codes).

Dead keys are composed here: on de and fr, `^` (and on de the grave and acute accents)
exist only as dead keys, and a scanner set up for those layouts types them as the dead key
then Space, the way a person would. xkb leaves composing to the application; the X compose
tables it could load are not installed on a box without X, so the few sequences a scanner
uses are built in.
"""

from __future__ import annotations

import unicodedata

from evdev import ecodes
from xkbcommon import xkb

GS = "\x1d"
_XKB_OFFSET = 8  # xkb keycodes are evdev codes + 8
_DOWN = xkb.KeyDirection.XKB_KEY_DOWN
_UP = xkb.KeyDirection.XKB_KEY_UP
_EFFECTIVE = xkb.StateComponent.XKB_STATE_MODS_EFFECTIVE
_KEYPAD_DIGITS = {
    ecodes.KEY_KP0: "0",
    ecodes.KEY_KP1: "1",
    ecodes.KEY_KP2: "2",
    ecodes.KEY_KP3: "3",
    ecodes.KEY_KP4: "4",
    ecodes.KEY_KP5: "5",
    ecodes.KEY_KP6: "6",
    ecodes.KEY_KP7: "7",
    ecodes.KEY_KP8: "8",
    ecodes.KEY_KP9: "9",
}
_ALT_KEYS = {ecodes.KEY_LEFTALT, ecodes.KEY_RIGHTALT}
_LOCK_KEYS = {"Lock": ecodes.KEY_CAPSLOCK, "Mod2": ecodes.KEY_NUMLOCK}  # Mod2 is NumLock
_PRESS, _RELEASE = 1, 0
# dead keysym -> (what it types before Space or itself, the combining mark it adds to a letter)
_DEAD_KEYS = {
    "dead_grave": ("`", "\u0300"),
    "dead_acute": ("\u00b4", "\u0301"),
    "dead_circumflex": ("^", "\u0302"),
    "dead_tilde": ("~", "\u0303"),
    "dead_diaeresis": ("\u00a8", "\u0308"),
    "dead_abovering": ("\u00b0", "\u030a"),
    "dead_cedilla": ("\u00b8", "\u0327"),
    "dead_caron": ("\u02c7", "\u030c"),
}


def _alt_code_char(digits: str) -> str:
    """Windows Alt codes: a leading 0 means code page 1252, otherwise 437; >255 is Unicode."""
    number = int(digits)
    if number > 255:
        return chr(number) if number <= 0x10FFFF else ""
    codec = "cp1252" if digits.startswith("0") else "cp437"
    return bytes([number]).decode(codec, errors="ignore")


class KeyDecoder:
    """Turns one device's key events into characters on its configured layout."""

    def __init__(self, keymap: xkb.Keymap, *, numlock: bool) -> None:
        self._keymap = keymap
        self._numlock = numlock
        self._alt_digits = ""
        self._dead: tuple[str, str] | None = None  # a dead key waiting for its letter
        self.ignored_chords = 0
        self._state = self._fresh_state(locks={"Mod2"} if numlock else set(), held=())

    def _fresh_state(self, locks: set[str], held: tuple[int, ...]) -> xkb.KeyboardState:
        state = self._keymap.state_new()
        for name in sorted(locks):
            code = _LOCK_KEYS[name] + _XKB_OFFSET
            state.update_key(code, _DOWN)
            state.update_key(code, _UP)
        for code in held:
            state.update_key(code + _XKB_OFFSET, _DOWN)
        return state

    def _active(self, modifier: str) -> bool:
        return bool(self._state.mod_name_is_active(modifier, _EFFECTIVE))

    def resync(self, held_keys: list[int]) -> None:
        """Rebuild the state after lost events (SYN_DROPPED) from the keys the kernel says are down.

        Lock states survive: the kernel cannot tell us what the scanner toggled.
        """
        locks = {name for name in _LOCK_KEYS if self._active(name)}
        self._alt_digits = ""
        self._dead = None
        self._state = self._fresh_state(locks, tuple(held_keys))

    def feed(self, code: int, value: int) -> str:
        """Apply one EV_KEY event (1 press, 0 release, 2 autorepeat) and return any text."""
        keycode = code + _XKB_OFFSET
        if value == _RELEASE:
            self._state.update_key(keycode, _UP)
            if code in _ALT_KEYS and self._alt_digits and not self._active("Mod1"):
                digits, self._alt_digits = self._alt_digits, ""
                return _alt_code_char(digits)
            return ""
        if value != _PRESS:  # autorepeat would duplicate characters
            return ""
        text = self._text_for(code, keycode)
        self._state.update_key(keycode, _DOWN)
        return text

    def _text_for(self, code: int, keycode: int) -> str:
        if self._active("Mod1") and not self._active("Control"):
            digit = _KEYPAD_DIGITS.get(code)
            if digit is not None:
                self._alt_digits += digit
            return ""
        text: str = self._state.key_get_string(keycode)
        if not self._active("Control"):
            return self._compose(keycode, text)
        # Ctrl+]: xkb's control transform gives GS where ']' is unshifted (us, gb); on other
        # layouts the scanner still means GS when it sends the ']' position or the ']' keysym.
        if text == GS or code == ecodes.KEY_RIGHTBRACE:
            return GS
        if xkb.keysym_to_string(self._state.key_get_one_sym(keycode)) == "]":
            return GS
        if text in ("\r", "\t"):
            return text
        self.ignored_chords += 1
        return ""

    def _compose(self, keycode: int, text: str) -> str:
        """Apply a pending dead key to `text`, or make this key the pending one."""
        dead = _DEAD_KEYS.get(xkb.keysym_get_name(self._state.key_get_one_sym(keycode)))
        pending = self._dead
        if dead is not None:
            self._dead = None if pending == dead else dead  # the same dead key twice: once
            return "" if pending is None else pending[0]
        if pending is None or not text:  # modifiers keep the dead key waiting
            return text
        self._dead = None
        if text == " ":
            return pending[0]
        composed = unicodedata.normalize("NFC", text + pending[1])
        return composed if len(composed) == 1 else pending[0] + text
