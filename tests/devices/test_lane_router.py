"""The lane router: parsed scans on the bus, the duplicate-scan window, device states."""

from __future__ import annotations

from collections.abc import Callable

from edge.bus import EventBus
from edge.devices.sink import DeviceRef, TagRead
from edge.events import DeviceStatusEvent, ScanEvent
from edge.lanes.router import LaneRouter
from edge.lanes.settings import LanesSettings

from .conftest import Clock, Collector

LANE1 = DeviceRef("lane1-scanner", "keyboard", "lane-1")
LANE2 = DeviceRef("lane2-scanner", "serial", "lane-2")


def test_duplicate_window_per_lane(bus: EventBus, collect: Callable[..., Collector]) -> None:
    scans = collect(ScanEvent)
    clock = Clock(0.0)
    settings = LanesSettings(duplicate_window_ms=0, duplicate_window_ms_by_lane={"lane-1": 800})
    router = LaneRouter(bus, settings, clock=clock)
    router.scan(LANE1, "4006381333931")
    clock.now = 0.5
    router.scan(LANE1, "4006381333931")  # a double read: dropped
    router.scan(LANE2, "4006381333931")
    router.scan(LANE2, "4006381333931")  # lane 2 has no window
    clock.now = 1.2
    router.scan(LANE1, "4006381333931")  # still held under the scanner: the window restarted
    clock.now = 2.5
    router.scan(LANE1, "4006381333931")  # a deliberate second scan
    router.scan(LANE1, "0042-03-20261122-0007")
    assert [(s.lane, s.data) for s in scans.seen] == [
        ("lane-1", "4006381333931"),
        ("lane-2", "4006381333931"),
        ("lane-2", "4006381333931"),
        ("lane-1", "4006381333931"),
        ("lane-1", "0042-03-20261122-0007"),
    ]
    assert router.repeats == 2


def test_scan_event_carries_symbology_data_and_parsed(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    scans = collect(ScanEvent)
    LaneRouter(bus, LanesSettings()).scan(LANE2, "]d20109506000134352310300125015261231\x1d21ABC")
    (event,) = scans.seen
    assert (event.lane, event.device, event.symbology) == (
        "lane-2",
        "lane2-scanner",
        "gs1-datamatrix",
    )
    assert event.parsed["net_weight_kg"] == "1.250"
    assert event.at.tzinfo is not None


def test_empty_and_garbage_scans_never_raise(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    scans = collect(ScanEvent)
    router = LaneRouter(bus, LanesSettings())
    router.scan(LANE1, "\x00\x01\x02")
    router.scan(LANE1, "]")
    router.scan(LANE1, "\ufffd\ufffd")
    assert [s.data for s in scans.seen] == ["]", "\ufffd\ufffd"]


def test_device_status_is_published_once_per_change(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    statuses = collect(DeviceStatusEvent)
    router = LaneRouter(bus, LanesSettings())
    router.status(LANE2, "disconnected", "/dev/ttyACM0: missing")
    router.status(LANE2, "disconnected", "/dev/ttyACM0: missing")
    router.status(LANE2, "connected", "/dev/ttyACM0")
    assert [(s.device, s.kind, s.state) for s in statuses.seen] == [
        ("lane2-scanner", "serial", "disconnected"),
        ("lane2-scanner", "serial", "connected"),
    ]
    assert router.health["lane2-scanner"].state == "connected"


def test_tag_in_tags_mode_is_a_uid_scan_with_its_ndef_records(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    scans = collect(ScanEvent)
    nfc = DeviceRef("n", "nfc", "lane-7")
    records = [{"type": "text", "text": "R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0"}]
    LaneRouter(bus, LanesSettings()).tap(nfc, TagRead("04AABBCC", records), "tags")
    (event,) = scans.seen
    assert (event.symbology, event.data) == ("nfc", "04AABBCC"), "the UID, whatever the tag holds"
    assert event.parsed == {"uid": "04AABBCC", "ndef": records}


def test_without_managers_an_auto_reader_only_scans_and_a_badge_reader_is_silent(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    scans = collect(ScanEvent)
    router = LaneRouter(bus, LanesSettings())
    router.tap(DeviceRef("n", "nfc", "lane-7"), TagRead("04AABBCC"), "auto")
    router.tap(DeviceRef("p", "pcsc", "lane-7"), TagRead("04DDEEFF"), "approvals")
    assert [(s.device, s.data, s.parsed) for s in scans.seen] == [
        ("n", "04AABBCC", {"uid": "04AABBCC", "ndef": []})
    ]
