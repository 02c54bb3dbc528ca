"""A keyboard-wedge scanner without hardware, for the scan latency benchmark.

Raw `input_event` records go through a pipe whose read end is python-evdev's own asyncio
EventIO, so the gateway reads them through the library path it uses for a real
/dev/input/event* node; only the ioctls (grab, key state) are stand-ins.
"""

from __future__ import annotations

import os
import struct
import time

from evdev import ecodes
from evdev.eventio_async import EventIO
from xkbcommon import xkb

from edge.devices.input_discovery import InputDeviceInfo
from edge.devices.keyboard_reader import InputSource
from edge.devices.keymaps import load_keymap

INPUT_EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux
_MODIFIERS = {"Shift": ecodes.KEY_LEFTSHIFT, "Mod5": ecodes.KEY_RIGHTALT}


class PipeInputSource(EventIO):
    """The gateway's end: what `evdev.InputDevice(path)` is for a real node."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    def grab(self) -> None:
        """Nothing else reads a pipe."""

    def ungrab(self) -> None:
        """Nothing else reads a pipe."""

    def active_keys(self) -> list[int]:
        return []

    def close(self) -> None:
        if self.fd >= 0:
            super().close()
            os.close(self.fd)
            self.fd = -1


def _reverse_layout(layout: str) -> dict[str, tuple[int, tuple[int, ...]]]:
    """For each character the layout types: its evdev key and the modifiers to hold."""
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
            if any(m not in _MODIFIERS for m in mods):
                continue
            char = xkb.keysym_to_string(syms[0])
            if char and char not in table:
                table[char] = (keycode - 8, tuple(sorted({_MODIFIERS[m] for m in mods})))
    return table


class KeyWriter:
    """The scanner's end: key presses as the kernel delivers them."""

    def __init__(self, fd: int, layout: str = "us") -> None:
        self.fd = fd
        self._table = _reverse_layout(layout)

    def _event(self, etype: int, code: int, value: int) -> bytes:
        stamp = time.time()
        return INPUT_EVENT.pack(int(stamp), int(stamp % 1 * 1e6), etype, code, value)

    def _keystroke(self, code: int, mods: tuple[int, ...] = ()) -> bytes:
        syn = self._event(ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
        out = b"".join(self._event(ecodes.EV_KEY, m, 1) + syn for m in mods)
        out += self._event(ecodes.EV_KEY, code, 1) + syn
        out += self._event(ecodes.EV_KEY, code, 0) + syn
        return out + b"".join(self._event(ecodes.EV_KEY, m, 0) + syn for m in reversed(mods))

    def text(self, text: str) -> bytes:
        """The key events that type `text` (Enter for CR, Ctrl+] for the GS1 separator)."""
        out = b""
        for char in text:
            if char == "\r":
                out += self._keystroke(ecodes.KEY_ENTER)
            elif char == "\x1d":
                out += self._keystroke(ecodes.KEY_RIGHTBRACE, (ecodes.KEY_LEFTCTRL,))
            else:
                out += self._keystroke(*self._table[char])
        return out

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class PipeFinder:
    """Stands in for /dev/input: the kernel nodes cannot be made here, so pipes are plugged."""

    def __init__(self) -> None:
        self.present: dict[str, tuple[InputDeviceInfo, PipeInputSource]] = {}

    def plug(self, node: str, port: str, layout: str = "us") -> KeyWriter:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        info = InputDeviceInfo(
            path=node,
            name="Honeywell Scanner",
            vendor=0x0C2E,
            product=0x0B61,
            by_path=(f"{port}-event-kbd",),
        )
        self.present[node] = (info, PipeInputSource(node, read_fd))
        return KeyWriter(write_fd, layout)

    def scan(self) -> list[InputDeviceInfo]:
        return [info for info, _ in self.present.values()]

    def open(self, info: InputDeviceInfo) -> InputSource:
        return self.present[info.path][1]
