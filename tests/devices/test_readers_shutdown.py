"""Every reader kind together: stopped without leaks, and one reader's bug isolated."""

from __future__ import annotations

import asyncio
import os
import threading

from edge.bus import EventBus
from edge.devices.hotplug import PollingWatcher
from edge.devices.readers import DeviceReaders
from edge.devices.settings import (
    DevicesSettings,
    KeyboardScannerSettings,
    NfcReaderSettings,
    PcscReaderSettings,
    SerialScannerSettings,
)
from edge.events import DeviceStatusEvent, ScanEvent
from edge.lanes.router import LaneRouter
from edge.lanes.settings import LanesSettings

from .conftest import Collector, PtyPair
from .nfc_emulator import free_udp_port
from .test_keyboard_hotplug import PORT_A, PipeFinder


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def describe(fds: set[int]) -> dict[int, str]:
    return {
        fd: os.readlink(f"/proc/self/fd/{fd}")
        for fd in fds
        if os.path.exists(f"/proc/self/fd/{fd}")
    }


async def test_all_readers_stop_cleanly(vpcd: int, pty_pair: PtyPair, bus: EventBus) -> None:
    statuses = Collector(bus, DeviceStatusEvent)
    finder = PipeFinder()
    writer = finder.plug("/dev/input/event5", PORT_A)
    settings = DevicesSettings(
        keyboards=[KeyboardScannerSettings(id="kbd", lane="lane-1", path=PORT_A)],
        serial=[SerialScannerSettings(id="ser", lane="lane-2", port=pty_pair.port)],
        nfc=[
            NfcReaderSettings(
                id="nfc", lane="lane-3", path=f"udp:127.0.0.1:{free_udp_port()}", targets=["212F"]
            )
        ],
        pcsc=[PcscReaderSettings(id="pcsc", lane="lane-4", reader="Virtual PCD 00 00")],
    )
    baseline_fds, baseline_threads = open_fds(), set(threading.enumerate())
    baseline_tasks = asyncio.all_tasks()
    readers = DeviceReaders(
        settings, LaneRouter(bus, LanesSettings()), finder=finder, watcher=PollingWatcher(5)
    )
    task = asyncio.create_task(readers.run(), name="devices")
    connected: set[str] = set()
    while connected != {"kbd", "ser", "nfc", "pcsc"}:
        event = await statuses.until(lambda ev: ev.state == "connected")
        connected.add(event.device)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    writer.close()
    finder.opened[0].close()  # idempotent: the supervisor already closed it
    assert set(threading.enumerate()) <= baseline_threads | {
        t for t in threading.enumerate() if t.name.startswith(("asyncio_", "ThreadPoolExecutor"))
    }
    assert not any(t.name.startswith(("nfc:", "pcsc:")) for t in threading.enumerate())
    assert asyncio.all_tasks() - baseline_tasks == set()
    leaked = open_fds() - baseline_fds
    assert not leaked, describe(leaked)


async def test_a_reader_bug_is_reported_and_restarted_while_other_lanes_read_on(
    pty_pair: PtyPair, bus: EventBus
) -> None:
    """The devices supervisor: an unexpected exception in one reader never stops the others."""
    statuses = Collector(bus, DeviceStatusEvent)
    scans = Collector(bus, ScanEvent)
    attempts = 0

    def broken_then_absent(path: str) -> object:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            msg = "a bug in the NFC driver"
            raise RuntimeError(msg)  # escapes the worker thread: not a hardware failure
        raise OSError(19, "No such device")

    settings = DevicesSettings(
        serial=[SerialScannerSettings(id="ser", lane="lane-2", port=pty_pair.port)],
        nfc=[NfcReaderSettings(id="nfc", lane="lane-3", path="usb", reconnect_s=0.05)],
    )
    readers = DeviceReaders(
        settings, LaneRouter(bus, LanesSettings()), open_nfc=broken_then_absent, restart_s=0.01
    )
    task = asyncio.create_task(readers.run(), name="devices")
    try:
        failed = await statuses.until(lambda ev: ev.device == "nfc" and ev.state == "error")
        assert "a bug in the NFC driver" in failed.detail
        again = await statuses.until(lambda ev: ev.device == "nfc" and ev.state == "disconnected")
        assert "No such device" in again.detail, "the reader was started again"
        await statuses.until(lambda ev: ev.device == "ser" and ev.state == "connected")
        pty_pair.write(b"0042-03-20261122-0007\r")
        assert (await scans.next()).lane == "lane-2"
        assert not task.done()
        assert readers.restarts == {"devices:nfc:nfc": 1}, "counted for /metrics"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not any(t.name.startswith("nfc:") for t in threading.enumerate())
