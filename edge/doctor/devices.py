"""Devices: each configured scanner and reader attached and usable by the gateway's user,
and a list of what is attached.

Keyboard-wedge scanners are found the way the gateway finds them
(`edge.devices.input_discovery`); a node `doctor` itself cannot open is counted, not
guessed at. A scanner the gateway holds (grabbed) is still found and checked. Device
libraries are imported only when something of their kind is looked at.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.devices.settings import (
    DevicesSettings,
    KeyboardScannerSettings,
    NfcReaderSettings,
    PcscReaderSettings,
    SerialScannerSettings,
)
from edge.doctor.access import ServiceUser, can_access
from edge.doctor.findings import Finding, failed, passed, skipped

if TYPE_CHECKING:
    from edge.devices.input_discovery import InputDeviceInfo

# pcsc-lite's own variable for a non-default socket; its default path otherwise
PCSCD_SOCKET = os.environ.get("PCSCLITE_CSOCK_NAME", "/run/pcscd/pcscd.comm")
LIST_DEVICES = "`edge-gateway devices` lists what is attached and which entry it matches"


def check(devices: DevicesSettings, user: ServiceUser, timeout_s: float) -> list[Finding]:
    keyboards, unopened = _keyboards(devices.input_dir)
    findings = [_keyboard(e, keyboards, unopened, devices, user) for e in devices.keyboards]
    findings += [_serial(entry, user) for entry in devices.serial]
    findings += [_nfc(entry, user) for entry in devices.nfc]
    readers: list[str] | None = None
    if devices.pcsc:
        pcsc, readers = _pcsc(devices.pcsc, timeout_s)
        findings += pcsc
    findings.append(_attached(devices, keyboards, unopened, readers))
    return findings


def _keyboards(input_dir: Path) -> tuple[list[InputDeviceInfo], int]:
    """Keyboard-capable input devices, and how many event nodes could not be opened."""
    if not input_dir.is_dir():
        return [], 0
    from edge.devices.input_discovery import EvdevFinder  # noqa: PLC0415 - loads evdev

    found = EvdevFinder(input_dir).scan()
    readable = sum(1 for node in input_dir.glob("event*") if os.access(node, os.R_OK))
    return found, len(list(input_dir.glob("event*"))) - readable


def _keyboard(
    entry: KeyboardScannerSettings,
    found: list[InputDeviceInfo],
    unopened: int,
    devices: DevicesSettings,
    user: ServiceUser,
) -> Finding:
    name = f"device:{entry.id}"
    if not devices.input_dir.is_dir():
        return failed(
            name,
            f"{entry.lane}: {devices.input_dir} does not exist, so no scanner can be seen",
            "check devices.input_dir (normally /dev/input)",
        )
    from edge.devices.input_discovery import matches  # noqa: PLC0415 - loads evdev

    info = next((i for i in found if matches(i, entry)), None)
    if info is None:
        note = f"; {unopened} input nodes could not be opened by doctor" if unopened else ""
        wanted = (
            ", ".join(
                f"{k}={v!r}"
                for k, v in (("vendor_product", entry.vendor_product), ("name", entry.name))
                if v
            )
            or f"path={entry.path!r}"
        )
        return failed(
            name,
            f"{entry.lane}: no attached input device matches {wanted}{note}",
            f"plug the scanner in, or fix its match in [[devices.keyboards]]; {LIST_DEVICES}",
        )
    seen = f"{info.name!r} {info.vendor_product} at {info.path}"
    if not can_access(user, Path(info.path), write=True):
        return failed(
            name,
            f"{entry.lane}: {seen} is not readable and writable by {user.name}",
            f"add {user.name} to the device's group (ls -l {info.path}) or install the"
            " gateway's udev rules",
        )
    return passed(name, f"{entry.lane}: {seen}")


def _serial(entry: SerialScannerSettings, user: ServiceUser) -> Finding:
    name = f"device:{entry.id}"
    port = Path(entry.port)
    if not port.exists():
        return failed(
            name,
            f"{entry.lane}: serial port {port} does not exist",
            f"plug the scanner in, or fix port in [[devices.serial]]; {LIST_DEVICES}",
        )
    if not can_access(user, port, write=True):
        return failed(
            name,
            f"{entry.lane}: {port} is not readable and writable by {user.name}",
            f"add {user.name} to the port's group (usually dialout: ls -l {port})",
        )
    return passed(name, f"{entry.lane}: serial port {port}")


def _nfc(entry: NfcReaderSettings, user: ServiceUser) -> Finding:
    name = f"device:{entry.id}"
    if not entry.path.startswith("tty:"):
        return skipped(
            name,
            f"{entry.lane}: not checked: nfcpy finds {entry.path!r} readers itself",
            "stop the gateway and tap a tag with `edge-gateway devices watch`",
        )
    port = Path("/dev") / f"tty{entry.path.split(':')[1]}"
    if not port.exists():
        return failed(
            name,
            f"{entry.lane}: {port} does not exist",
            "plug the reader in, or fix path in [[devices.nfc]]",
        )
    if not can_access(user, port, write=True):
        return failed(
            name,
            f"{entry.lane}: {port} is not readable and writable by {user.name}",
            f"add {user.name} to the port's group (usually dialout)",
        )
    return passed(name, f"{entry.lane}: NFC reader on {port}")


def _pcsc(entries: list[PcscReaderSettings], timeout_s: float) -> tuple[list[Finding], list[str]]:
    """pcscd reachable on its socket, then each configured reader by name."""
    problem = _pcscd_problem(timeout_s)
    if problem is not None:
        return [
            failed(
                f"device:{e.id}",
                f"{e.lane}: {problem}",
                "install and start pcscd: apt install pcscd; systemctl enable --now pcscd.socket",
            )
            for e in entries
        ], []
    readers = _pcsc_readers()
    if isinstance(readers, str):
        return [
            failed(f"device:{e.id}", f"{e.lane}: {readers}", "restart pcscd") for e in entries
        ], []
    out = []
    for e in entries:
        match = next((r for r in readers if e.reader in r), None)
        if match is None:
            out.append(
                failed(
                    f"device:{e.id}",
                    f"{e.lane}: no PC/SC reader named like {e.reader!r}"
                    f" (pcscd sees: {', '.join(readers) or 'none'})",
                    "plug the reader in, or fix reader in [[devices.pcsc]]",
                )
            )
        else:
            out.append(passed(f"device:{e.id}", f"{e.lane}: PC/SC reader {match!r}"))
    return out, readers


def _pcscd_problem(timeout_s: float) -> str | None:
    path = PCSCD_SOCKET
    if not Path(path).exists():
        return f"pcscd is not running (no socket at {path})"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout_s)
        try:
            probe.connect(path)
        except OSError as exc:
            return f"pcscd does not answer on {path}: {exc.strerror or exc}"
    return None


def _pcsc_readers() -> list[str] | str:
    from edge.devices.pcsc_reader import list_readers  # noqa: PLC0415 - only with PC/SC readers

    return list_readers()


def _attached(
    devices: DevicesSettings,
    keyboards: list[InputDeviceInfo],
    unopened: int,
    readers: list[str] | None,
) -> Finding:
    from edge.devices.input_discovery import match_scanner  # noqa: PLC0415 - loads evdev

    parts: list[str] = []
    listed: dict[str, Any] = {"input": [], "serial": [], "pcsc": readers or []}
    for info in keyboards:
        entry = match_scanner(info, devices.keyboards)
        role = f" = {entry.id} ({entry.lane})" if entry else ""
        parts.append(f"{info.name!r} {info.vendor_product} {Path(info.path).name}{role}")
        listed["input"].append(
            {"path": info.path, "name": info.name, "vendor_product": info.vendor_product}
        )
    for port in _serial_ports():
        parts.append(f"{port[0]} ({port[1]})")
        listed["serial"].append({"path": port[0], "description": port[1]})
    parts += [f"PC/SC {r!r}" for r in readers or []]
    if unopened:
        parts.append(f"{unopened} input nodes doctor could not open")
    detail = "; ".join(parts) if parts else "no scanners, keyboards or serial ports"
    return passed("devices-attached", detail, **listed)


def _serial_ports() -> list[tuple[str, str]]:
    from serial.tools import list_ports  # noqa: PLC0415 - loads pyserial

    # ports with no hardware behind them (legacy ttyS placeholders) say "n/a"
    return [(p.device, p.description) for p in list_ports.comports() if p.hwid != "n/a"]
