"""The keyboard-wedge supervisor: matching by port path, two lanes at once, unplug and replug."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edge.bus import EventBus
from edge.devices.hotplug import PollingWatcher
from edge.devices.input_discovery import InputDeviceInfo
from edge.devices.keyboard_reader import InputSource
from edge.devices.keyboard_scanners import KeyboardScanners
from edge.devices.settings import DevicesSettings, KeyboardScannerSettings
from edge.events import DeviceStatusEvent, ScanEvent
from edge.lanes.router import LaneRouter
from edge.lanes.settings import LanesSettings

from .conftest import Collector
from .evdev_pipe import KeyWriter, PipeInputSource, pipe_device

PORT_A = "pci-0000:00:14.0-usb-0:1.1:1.0"
PORT_B = "pci-0000:00:14.0-usb-0:1.2:1.0"


class PipeFinder:
    """Stands in for /dev/input: the kernel nodes cannot exist here, so pipes are "plugged"."""

    def __init__(self) -> None:
        self.present: dict[str, tuple[InputDeviceInfo, PipeInputSource]] = {}
        self.opened: list[PipeInputSource] = []

    def plug(self, node: str, port: str, layout: str = "us") -> KeyWriter:
        source, writer = pipe_device(node, layout)
        info = InputDeviceInfo(
            path=node,
            name="Honeywell Scanner",
            vendor=0x0C2E,
            product=0x0B61,
            by_path=(f"{port}-event-kbd",),
        )
        self.present[node] = (info, source)
        return writer

    def unplug(self, node: str, writer: KeyWriter) -> None:
        del self.present[node]
        writer.close()  # the reader sees the node end

    def scan(self) -> list[InputDeviceInfo]:
        return [info for info, _ in self.present.values()]

    def open(self, info: InputDeviceInfo) -> InputSource:
        source = self.present[info.path][1]
        self.opened.append(source)
        return source


def settings() -> DevicesSettings:
    return DevicesSettings(
        keyboards=[
            KeyboardScannerSettings(
                id="lane1-scanner", lane="lane-1", vendor_product="0c2e:0b61", path=f"{PORT_A}*"
            ),
            KeyboardScannerSettings(id="lane2-scanner", lane="lane-2", path=PORT_B, layout="de"),
        ],
        hotplug="poll",
        poll_interval_s=0.02,
    )


async def until_status(statuses: Collector, device: str, state: str) -> DeviceStatusEvent:
    def check(ev: DeviceStatusEvent) -> bool:
        return ev.device == device and ev.state == state

    event: DeviceStatusEvent = await statuses.until(check)
    return event


async def test_identical_scanners_on_two_ports_feed_two_lanes_and_survive_replug(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    scans, statuses = collect(ScanEvent), collect(DeviceStatusEvent)
    finder = PipeFinder()
    writer_a = finder.plug("/dev/input/event5", PORT_A)
    writer_b = finder.plug("/dev/input/event6", PORT_B, layout="de")
    router = LaneRouter(bus, LanesSettings())
    scanners = KeyboardScanners(settings(), router, finder, PollingWatcher(0.02))
    task = asyncio.create_task(scanners.run(), name="keyboards")
    try:
        await until_status(statuses, "lane1-scanner", "connected")
        await until_status(statuses, "lane2-scanner", "connected")
        assert all(source.grab_calls == 1 for source in finder.opened)

        # both scanners type at once, interleaved on the event loop
        writer_a.type("R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0\r")
        writer_b.type("]C1010950600013435210Zy\x1d17261231\r")
        got = {(await scans.next()).lane: None for _ in range(2)}
        by_lane = {ev.lane: ev for ev in scans.seen}
        assert set(got) == {"lane-1", "lane-2"}
        assert by_lane["lane-1"].device == "lane1-scanner"
        assert by_lane["lane-1"].parsed["kind"] == "return_id"
        assert by_lane["lane-2"].data == "010950600013435210Zy\x1d17261231"
        assert by_lane["lane-2"].parsed["batch"] == "Zy"
        assert by_lane["lane-2"].symbology == "gs1-128"

        # unplug lane 1's scanner: an event, not a crash; lane 2 keeps working
        first_source = finder.present["/dev/input/event5"][1]
        finder.unplug("/dev/input/event5", writer_a)
        gone = await until_status(statuses, "lane1-scanner", "disconnected")
        assert "event5" in gone.detail
        assert first_source.ungrab_calls == 1
        assert first_source.fd == -1, "the node is closed after unplug"
        writer_b.type("still-lane-2\r")
        assert (await scans.next()).data == "still-lane-2"

        # plug it back in (a new node number, same port): found again without a restart
        writer_a2 = finder.plug("/dev/input/event11", PORT_A)
        back = await until_status(statuses, "lane1-scanner", "connected")
        assert back.detail == "/dev/input/event11"
        writer_a2.type("0042-03-20261122-0007\r")
        again = await scans.next()
        assert (again.lane, again.parsed["kind"]) == ("lane-1", "sale_id")
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert all(source.fd == -1 for source in finder.opened), "shutdown closes every node"
    assert scanners.attached == {}


async def test_unmatched_keyboards_are_left_alone(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    statuses = collect(DeviceStatusEvent)
    finder = PipeFinder()
    writer = finder.plug("/dev/input/event2", "platform-i8042-serio-0")
    router = LaneRouter(bus, LanesSettings())
    scanners = KeyboardScanners(settings(), router, finder, PollingWatcher(0.02))
    other = finder.plug("/dev/input/event5", PORT_A)
    task = asyncio.create_task(scanners.run())
    try:
        await until_status(statuses, "lane1-scanner", "connected")
        assert set(scanners.attached) == {"/dev/input/event5"}
        assert [s.path for s in finder.opened] == ["/dev/input/event5"], (
            "the PC keyboard is never opened"
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        writer.close()
        other.close()


async def test_a_device_that_cannot_be_grabbed_reports_error_and_is_not_retried(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    statuses = collect(DeviceStatusEvent)
    finder = PipeFinder()
    writer = finder.plug("/dev/input/event5", PORT_A)
    source = finder.present["/dev/input/event5"][1]

    def busy() -> None:
        raise OSError(16, "Device or resource busy")

    source.grab = busy  # type: ignore[method-assign]
    scanners = KeyboardScanners(
        settings(), LaneRouter(bus, LanesSettings()), finder, PollingWatcher(0.02)
    )
    task = asyncio.create_task(scanners.run())
    try:
        event = await until_status(statuses, "lane1-scanner", "error")
        assert "busy" in event.detail
        looked = 0
        three_more_looks = asyncio.Event()
        original_scan = finder.scan
        loop = asyncio.get_running_loop()

        def counting_scan() -> list[InputDeviceInfo]:
            nonlocal looked
            looked += 1
            if looked == 3:
                loop.call_soon_threadsafe(three_more_looks.set)
            return original_scan()

        finder.scan = counting_scan  # type: ignore[method-assign]
        await asyncio.wait_for(three_more_looks.wait(), 5)
        assert len(finder.opened) == 1, "a busy device is not reopened on every look"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        writer.close()


async def test_a_bug_reading_one_scanner_does_not_stop_the_other_lane(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    scans, statuses = collect(ScanEvent), collect(DeviceStatusEvent)
    finder = PipeFinder()
    writer_a = finder.plug("/dev/input/event5", PORT_A)
    writer_b = finder.plug("/dev/input/event6", PORT_B, layout="de")
    broken = finder.present["/dev/input/event5"][1]
    loop = asyncio.get_running_loop()

    def buggy_read() -> asyncio.Future[object]:
        future: asyncio.Future[object] = loop.create_future()
        future.set_exception(RuntimeError("a decoding bug"))
        return future

    broken.async_read = buggy_read  # type: ignore[method-assign]
    scanners = KeyboardScanners(
        settings(), LaneRouter(bus, LanesSettings()), finder, PollingWatcher(0.02)
    )
    task = asyncio.create_task(scanners.run(), name="keyboards")
    try:
        failed = await until_status(statuses, "lane1-scanner", "error")
        assert "a decoding bug" in failed.detail
        await until_status(statuses, "lane2-scanner", "connected")
        writer_b.type("still-lane-2\r")
        assert (await scans.next()).data == "still-lane-2"
        assert not task.done()
        assert broken.fd == -1, "the failed scanner's node was torn down"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        writer_a.close()
        writer_b.close()
