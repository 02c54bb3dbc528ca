"""Finding keyboard-capable input devices and matching them to configured scanners.

A scanner is recognised by vendor:product, a glob on its name, or a glob on its physical
port path: udev's ID_PATH (e.g. `pci-0000:00:14.0-usb-0:1.2:1.0`) or the link name udev
makes under /dev/input/by-path. The port path is what tells two identical scanners apart.
Scanning opens every event node, so it runs off the event loop.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import evdev
from evdev import ecodes

from edge.devices.keyboard_reader import InputSource
from edge.devices.settings import KeyboardScannerSettings

log = logging.getLogger(__name__)

# A device that can type these is keyboard-like (scanners, keyboards); mice and buttons are not.
_KEYBOARD_KEYS = {ecodes.KEY_A, ecodes.KEY_Z, ecodes.KEY_1, ecodes.KEY_0, ecodes.KEY_ENTER}


@dataclass(frozen=True)
class InputDeviceInfo:
    """What the kernel and udev say about one event node."""

    path: str
    name: str
    vendor: int
    product: int
    phys: str = ""
    id_path: str | None = None
    by_path: tuple[str, ...] = ()

    @property
    def vendor_product(self) -> str:
        return f"{self.vendor:04x}:{self.product:04x}"

    def port_paths(self) -> list[str]:
        """ID_PATH and the by-path link names (with and without their `-event-kbd` tail)."""
        out = [self.id_path] if self.id_path else []
        for link in self.by_path:
            out.append(link)
            out.append(link.rsplit("-event", 1)[0])
        return out


def matches(info: InputDeviceInfo, entry: KeyboardScannerSettings) -> bool:
    """Every criterion the entry gives must hold."""
    if entry.vendor_product is not None and entry.vendor_product.lower() != info.vendor_product:
        return False
    if entry.name is not None and not fnmatch.fnmatchcase(info.name, entry.name):
        return False
    if entry.path is not None:
        return any(fnmatch.fnmatchcase(p, entry.path) for p in info.port_paths())
    return True


def match_scanner(
    info: InputDeviceInfo, entries: Iterable[KeyboardScannerSettings]
) -> KeyboardScannerSettings | None:
    """The first configured scanner this device is (config order decides ties)."""
    return next((entry for entry in entries if matches(info, entry)), None)


def by_path_links(input_dir: Path) -> dict[str, list[str]]:
    """Event node path -> names of the /dev/input/by-path links pointing at it."""
    links: dict[str, list[str]] = {}
    folder = input_dir / "by-path"
    if not folder.is_dir():
        return links
    for link in sorted(folder.iterdir()):
        try:
            target = str(link.resolve(strict=True))
        except OSError:
            continue
        links.setdefault(target, []).append(link.name)
    return links


def _udev_context() -> Any:
    """pyudev's context, or None where libudev cannot be loaded (minimal images)."""
    try:
        import pyudev  # noqa: PLC0415 - loads libudev, which not every box has

        return pyudev.Context()
    except (ImportError, OSError):
        return None


def _udev_id_path(context: Any, node: Path) -> str | None:
    if context is None:
        return None
    import pyudev  # noqa: PLC0415 - imported by _udev_context already

    try:
        device = pyudev.Devices.from_device_file(context, str(node))
        value = device.properties.get("ID_PATH")
    except (OSError, ValueError, pyudev.DeviceNotFoundError):
        return None
    return str(value) if value else None


def _is_keyboard(device: evdev.InputDevice[str]) -> bool:
    keys = set(device.capabilities().get(ecodes.EV_KEY, []))
    return keys >= _KEYBOARD_KEYS


class EvdevFinder:
    """Lists and opens the key-capable event nodes under an input directory (blocking)."""

    def __init__(self, input_dir: Path) -> None:
        self._input_dir = input_dir

    def scan(self) -> list[InputDeviceInfo]:
        links = by_path_links(self._input_dir)
        udev = _udev_context()
        found: list[InputDeviceInfo] = []
        for node in sorted(self._input_dir.glob("event*")):
            try:
                device = evdev.InputDevice(str(node))
            except OSError as exc:
                log.debug("cannot open %s: %s", node, exc)
                continue
            try:
                if not _is_keyboard(device):
                    continue
                found.append(
                    InputDeviceInfo(
                        path=str(node),
                        name=device.name,
                        vendor=device.info.vendor,
                        product=device.info.product,
                        phys=device.phys or "",
                        id_path=_udev_id_path(udev, node),
                        by_path=tuple(links.get(str(node.resolve()), ())),
                    )
                )
            except OSError as exc:  # unplugged while we looked: the next look sees it gone
                log.debug("cannot query %s: %s", node, exc)
            finally:
                device.close()
        return found

    def open(self, info: InputDeviceInfo) -> InputSource:
        device: InputSource = evdev.InputDevice(info.path)
        return device
