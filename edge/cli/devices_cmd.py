"""`edge-gateway devices`: what input hardware the gateway sees, and a live scan tester.

`devices` lists keyboard-capable input devices with the configured scanner each matches
(its lane, and whether something already holds it), plus the serial, NFC and PC/SC
readers in the configuration. `devices watch` reads the configured devices itself and
prints each decoded scan: stop the gateway first, since it holds the scanners exclusively.
`--all` also reads unconfigured keyboards (without grabbing them) to find out which device
is which.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from edge.cli.common import print_table, settings_from
from edge.devices.readers import DeviceReaders
from edge.devices.settings import DevicesSettings, KeyboardScannerSettings
from edge.devices.sink import DeviceRef, DeviceState, TagRead, TapMode

if TYPE_CHECKING:
    from edge.devices.input_discovery import InputDeviceInfo

# evdev, xkbcommon and biip are imported by the commands that use them: `edge-gateway run`
# loads this module too, and a gateway without scanners must not carry them in memory.


def register(sub: Any) -> None:
    parser = sub.add_parser("devices", help="list input devices and the lanes they serve")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_list)
    actions = parser.add_subparsers(dest="devices_action", metavar="ACTION")
    watch = actions.add_parser("watch", help="print decoded scans live to test a scanner")
    watch.add_argument("--all", action="store_true", help="also read unconfigured keyboards")
    watch.add_argument(
        "--layout",
        default="us",
        choices=["us", "de", "fr", "gb"],
        help="layout for unconfigured keyboards",
    )
    watch.add_argument("--count", type=int, default=0, help="stop after this many scans")
    watch.add_argument("--timeout", type=float, default=0, help="stop after this many seconds")
    watch.set_defaults(func=_watch)


def _grab_state(info: InputDeviceInfo) -> str:
    """Whether the node is free, held by someone (the running gateway), or off limits."""
    import evdev  # noqa: PLC0415 - probing only here

    try:
        device = evdev.InputDevice(info.path)
    except OSError as exc:
        return f"no access ({exc.strerror})"
    try:
        device.grab()
    except OSError as exc:
        return (
            "in use (grabbed, e.g. by the running gateway)"
            if exc.errno == errno.EBUSY
            else str(exc)
        )
    else:
        device.ungrab()
        return "free"
    finally:
        device.close()


def _keyboard_rows(devices: DevicesSettings) -> list[dict[str, Any]]:
    from edge.devices.input_discovery import EvdevFinder, match_scanner  # noqa: PLC0415

    rows: list[dict[str, Any]] = []
    matched: set[str] = set()
    for info in EvdevFinder(devices.input_dir).scan():
        entry = match_scanner(info, devices.keyboards)
        row: dict[str, Any] = {
            "kind": "keyboard",
            "path": info.path,
            "name": info.name,
            "vendor_product": info.vendor_product,
            "port": info.id_path or (info.by_path[0] if info.by_path else ""),
            "device": entry.id if entry else None,
            "lane": entry.lane if entry else None,
            "state": _grab_state(info) if entry else "not configured (left alone)",
        }
        if entry:
            matched.add(entry.id)
        rows.append(row)
    for entry in devices.keyboards:
        if entry.id not in matched:
            rows.append(
                {"kind": "keyboard", "device": entry.id, "lane": entry.lane, "state": "not present"}
            )
    return rows


def _pcsc_readers() -> list[str] | str:
    from edge.devices.pcsc_reader import list_readers  # noqa: PLC0415 - only with PC/SC readers

    return list_readers()


def device_rows(devices: DevicesSettings) -> list[dict[str, Any]]:
    rows = _keyboard_rows(devices)
    for serial in devices.serial:
        present = Path(serial.port).exists()
        state = "present" if present else "missing"
        rows.append(
            {
                "kind": "serial",
                "device": serial.id,
                "lane": serial.lane,
                "path": serial.port,
                "state": state,
            }
        )
    for nfc in devices.nfc:
        rows.append(
            {
                "kind": "nfc",
                "device": nfc.id,
                "lane": nfc.lane,
                "path": nfc.path,
                "state": f"configured ({nfc.mode})",
            }
        )
    if devices.pcsc:
        readers = _pcsc_readers()
        for pcsc in devices.pcsc:
            if isinstance(readers, str):
                state = readers
            else:
                name = next((r for r in readers if pcsc.reader in r), None)
                state = f"present: {name}" if name else "missing"
            rows.append(
                {
                    "kind": "pcsc",
                    "device": pcsc.id,
                    "lane": pcsc.lane,
                    "path": pcsc.reader,
                    "state": state,
                }
            )
    return rows


def _list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    rows = device_rows(settings.devices)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(
            f"no keyboard-capable input devices under {settings.devices.input_dir}, none configured"
        )
        return 0
    print_table(
        ("KIND", "PATH", "DEVICE -> LANE", "STATE", "SEEN AS"),
        [
            (
                row["kind"],
                row.get("path") or "-",
                f"{row['device']} -> {row['lane']}" if row.get("device") else "-",
                row["state"],
                f"{row['name']!r} {row['vendor_product']} port={row['port'] or '-'}"
                if "name" in row
                else "",
            )
            for row in rows
        ],
    )
    return 0


class _PrintingSink:
    """Prints what readers deliver; counts scans for --count."""

    def __init__(self, out: TextIO, count: int) -> None:
        self._out = out
        self._count = count
        self.scans = 0
        self.done = asyncio.Event()

    def _line(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
        print(f"{stamp} {text}", file=self._out, flush=True)

    def scan(self, device: DeviceRef, payload: str) -> None:
        from edge.scan.payload import parse_payload  # noqa: PLC0415

        scan = parse_payload(payload)
        self._line(
            f"scan {device.lane} {device.id} {scan.symbology} {scan.data!r}"
            f" {json.dumps(scan.parsed)}"
        )
        self._counted()

    def tap(self, device: DeviceRef, tag: TagRead, mode: TapMode) -> None:
        self._line(
            f"tap  {device.lane} {device.id} uid={tag.uid} ({mode}) {json.dumps(tag.records)}"
        )
        self._counted()

    def status(self, device: DeviceRef, state: DeviceState, detail: str = "") -> None:
        self._line(f"{state:<12} {device.lane} {device.id} {detail}")

    def _counted(self) -> None:
        self.scans += 1
        if self._count and self.scans >= self._count:
            self.done.set()


def _with_unconfigured(devices: DevicesSettings, layout: str) -> DevicesSettings:
    from edge.devices.input_discovery import EvdevFinder, match_scanner  # noqa: PLC0415

    extra: list[KeyboardScannerSettings] = []
    for info in EvdevFinder(devices.input_dir).scan():
        if match_scanner(info, devices.keyboards) is None and info.by_path:
            node = Path(info.path).name
            extra.append(
                KeyboardScannerSettings(
                    id=node, lane="unassigned", path=info.by_path[0], layout=layout, grab=False
                )
            )
    return devices.model_copy(update={"keyboards": [*devices.keyboards, *extra]})


async def _watch_async(devices: DevicesSettings, args: argparse.Namespace, out: TextIO) -> int:
    sink = _PrintingSink(out, args.count)
    readers = asyncio.create_task(DeviceReaders(devices, sink).run(), name="devices-watch")
    counted = asyncio.create_task(sink.done.wait(), name="devices-watch-count")
    try:  # until enough scans, the timeout, or the readers end (nothing to read)
        await asyncio.wait(
            {readers, counted}, timeout=args.timeout or None, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (readers, counted):
            task.cancel()
        await asyncio.gather(readers, counted, return_exceptions=True)
    if readers.done() and not readers.cancelled() and sink.scans == 0:
        print("no configured device to read (see `edge-gateway devices`)", file=sys.stderr)
        return 1
    return 0 if not args.count or sink.scans >= args.count else 1


def _watch(args: argparse.Namespace) -> int:
    devices = settings_from(args).devices
    if args.all:
        devices = _with_unconfigured(devices, args.layout)
    print(
        "watching; stop the gateway first (it holds scanners exclusively). Ctrl+C ends.",
        file=sys.stderr,
    )
    return asyncio.run(_watch_async(devices, args, sys.stdout))
