"""A keyboard-wedge scanner without hardware: raw `input_event` records through a pipe.

The read end is wrapped in python-evdev's own asyncio EventIO, so the gateway reads it
through exactly the library path it uses for /dev/input/event* nodes (add_reader, the C
`device_read_many`, InputEvent). Only the ioctls (grab, key state) are stand-ins.
"""

from __future__ import annotations

import os
import struct
import time

from evdev import ecodes
from evdev.eventio_async import EventIO
from xkbcommon import xkb

from edge.devices.keymaps import load_keymap

INPUT_EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux


class PipeInputSource(EventIO):
    """The gateway-side end: what `evdev.InputDevice(path)` would be for a real node."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.grab_calls = 0
        self.ungrab_calls = 0
        self.held_keys: list[int] = []

    def grab(self) -> None:
        self.grab_calls += 1

    def ungrab(self) -> None:
        self.ungrab_calls += 1

    def active_keys(self) -> list[int]:
        return list(self.held_keys)

    def close(self) -> None:
        if self.fd >= 0:
            super().close()
            os.close(self.fd)
            self.fd = -1


_MOD_KEYS = {
    "Shift": ecodes.KEY_LEFTSHIFT,
    "Mod5": ecodes.KEY_RIGHTALT,
    "LevelThree": ecodes.KEY_RIGHTALT,
}


def reverse_layout(layout: str) -> dict[str, tuple[int, tuple[int, ...]]]:
    """For each character a layout can type: its evdev key and the modifier keys to hold."""
    keymap = load_keymap(layout)
    names = [keymap.mod_get_name(i) for i in range(keymap.num_mods())]
    table: dict[str, tuple[int, tuple[int, ...]]] = {}
    for keycode in range(9, 128):
        for level in range(keymap.num_levels_for_key(keycode, 0)):
            masks = keymap.key_get_mods_for_level(keycode, 0, level)
            syms = keymap.key_get_syms_by_level(keycode, 0, level)
            if not masks or not syms:
                continue
            mods = [names[i] for i in range(len(names)) if masks[0] & (1 << i)]
            if any(m not in _MOD_KEYS for m in mods):
                continue
            char = xkb.keysym_to_string(syms[0])
            if char and char not in table:
                table[char] = (keycode - 8, tuple(sorted({_MOD_KEYS[m] for m in mods})))
    return table


class KeyWriter:
    """The scanner-side end: writes key presses as the kernel would deliver them."""

    def __init__(self, fd: int, layout: str = "us") -> None:
        self.fd = fd
        self._table = reverse_layout(layout)

    def event(self, etype: int, code: int, value: int, at: float | None = None) -> bytes:
        """One input_event stamped now, or at `at` (seconds since the epoch, as the kernel)."""
        stamp = time.time() if at is None else at
        return INPUT_EVENT.pack(int(stamp), int(stamp % 1 * 1e6), etype, code, value)

    def keystroke(self, code: int, mods: tuple[int, ...] = (), at: float | None = None) -> bytes:
        out = b"".join(self.event(ecodes.EV_KEY, m, 1, at) + self.syn(at) for m in mods)
        out += self.event(ecodes.EV_KEY, code, 1, at) + self.syn(at)
        out += self.event(ecodes.EV_KEY, code, 0, at) + self.syn(at)
        out += b"".join(self.event(ecodes.EV_KEY, m, 0, at) + self.syn(at) for m in reversed(mods))
        return out

    def syn(self, at: float | None = None) -> bytes:
        return self.event(ecodes.EV_SYN, ecodes.SYN_REPORT, 0, at)

    def text(self, text: str, at: float | None = None) -> bytes:
        """The key events that type `text`, all stamped now or at `at`."""
        out = b""
        for char in text:
            if char == "\r":
                out += self.keystroke(ecodes.KEY_ENTER, at=at)
            elif char == "\t":
                out += self.keystroke(ecodes.KEY_TAB, at=at)
            elif char == "\x1d":
                out += self.keystroke(ecodes.KEY_RIGHTBRACE, (ecodes.KEY_LEFTCTRL,), at)
            else:
                code, mods = self._table[char]
                out += self.keystroke(code, mods, at)
        return out

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    def type(self, text: str) -> None:
        self.write(self.text(text))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def pipe_device(path: str, layout: str = "us") -> tuple[PipeInputSource, KeyWriter]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    return PipeInputSource(path, read_fd), KeyWriter(write_fd, layout)
