"""NFC through nfcpy's real UDP driver and an emulated Type 3 tag: taps, NDEF, badges, and
one reader in `auto` mode serving both jobs."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable

import ndef
import pytest

from edge.bus import EventBus
from edge.devices.nfc_reader import NfcReader
from edge.devices.settings import NfcReaderSettings
from edge.events import ApprovalGrantEvent, DeviceStatusEvent, ScanEvent
from edge.lanes.approvals import ApprovalGrants, BadgeApprovals, badge_fingerprint
from edge.lanes.router import LaneRouter
from edge.lanes.settings import LanesSettings

from .conftest import Collector, RecordingSink
from .nfc_emulator import EmulatedType3Tag, free_udp_port

BADGE_IDM = "03FEFFE011223344"
TAG_IDM = "0102030405060708"
RETURN_ID = "R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0"
URI = "https://example.com/r/1"


def reader_settings(port: int, mode: str | None = "tags") -> NfcReaderSettings:
    """The reader on the UDP radio; `mode=None` leaves the mode at its default."""
    return NfcReaderSettings(
        id="lane3-nfc",
        lane="lane-3",
        path=f"udp:127.0.0.1:{port}",
        targets=["212F"],
        reconnect_s=0.05,
        **({} if mode is None else {"mode": mode}),
    )


def customer_tag_records() -> list[ndef.Record]:
    """A URI, a text and a record of a type registers cannot know (given to them as hex)."""
    return [
        ndef.UriRecord(URI),
        ndef.TextRecord(RETURN_ID),
        ndef.Record("urn:nfc:ext:example.com:loyalty", "", b"\x01\xab"),
    ]


CUSTOMER_TAG_NDEF = [
    {"type": "uri", "uri": URI},
    {"type": "text", "text": RETURN_ID},
    {"type": "urn:nfc:ext:example.com:loyalty", "data": "01AB"},
]


@pytest.fixture
def port() -> int:
    return free_udp_port()


@pytest.fixture
async def tags() -> AsyncIterator[list[EmulatedType3Tag]]:
    made: list[EmulatedType3Tag] = []
    yield made
    for tag in made:
        await asyncio.to_thread(tag.remove)


async def test_tap_delivers_uid_and_ndef_records_once_per_presentation(
    sink: RecordingSink, port: int, tags: list[EmulatedType3Tag]
) -> None:
    tag = EmulatedType3Tag(port, BADGE_IDM, [ndef.TextRecord(RETURN_ID), ndef.UriRecord(URI)])
    tags.append(tag)
    reader = NfcReader(reader_settings(port), sink)
    task = asyncio.create_task(reader.run())
    try:
        device, _state, _ = await sink.state("connected")
        assert device.lane == "lane-3"
        tag.present()
        device, read, mode = await sink.next("tap")
        assert (device.id, mode) == ("lane3-nfc", "tags")
        assert read.uid == BADGE_IDM
        assert read.records == [
            {"type": "text", "text": RETURN_ID},
            {"type": "uri", "uri": URI},
        ]
        # while the tag stays on the reader it is not reported again: the next tap is the
        # next card presented
        await asyncio.to_thread(tag.remove)
        other = EmulatedType3Tag(port, TAG_IDM, [])
        tags.append(other)
        other.present()
        _, again, _ = await sink.next("tap")
        assert (again.uid, again.records) == (TAG_IDM, [])
        assert reader.taps == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not any(t.name == "nfc:lane3-nfc" for t in threading.enumerate())


async def test_tag_in_tags_mode_is_a_scan_on_the_lane(
    bus: EventBus, collect: Callable[..., Collector], port: int, tags: list[EmulatedType3Tag]
) -> None:
    scans = collect(ScanEvent)
    tag = EmulatedType3Tag(port, TAG_IDM, customer_tag_records())
    tags.append(tag)
    reader = NfcReader(reader_settings(port), LaneRouter(bus, LanesSettings()))
    task = asyncio.create_task(reader.run())
    try:
        tag.present()
        scan = await scans.next()
        assert (scan.lane, scan.device, scan.symbology, scan.data) == (
            "lane-3",
            "lane3-nfc",
            "nfc",
            TAG_IDM,
        )
        assert scan.parsed == {"uid": TAG_IDM, "ndef": CUSTOMER_TAG_NDEF}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_manager_badge_tap_yields_a_grant_for_the_lane_and_is_audited(
    bus: EventBus, collect: Callable[..., Collector], port: int, tags: list[EmulatedType3Tag]
) -> None:
    grants_seen = collect(ApprovalGrantEvent)
    scans = collect(ScanEvent)
    audit: list[tuple[str, str, dict[str, object]]] = []
    looked_up: list[str] = []

    async def manager_for_badge(uid_hex: str) -> str | None:
        looked_up.append(uid_hex)
        return "m-17" if uid_hex == BADGE_IDM else None

    async def record(action: str, subject: str, detail: dict[str, object]) -> None:
        audit.append((action, subject, detail))

    grants = ApprovalGrants(bus, ttl_s=120)
    router = LaneRouter(bus, LanesSettings(), BadgeApprovals(grants, manager_for_badge, record))
    tag = EmulatedType3Tag(port, BADGE_IDM, [])
    tags.append(tag)
    reader = NfcReader(reader_settings(port, mode="approvals"), router)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(reader.run()), group.create_task(router.run())]
        tag.present()
        event = await grants_seen.next()
        for task in tasks:
            task.cancel()
    assert (event.lane, event.manager_id) == ("lane-3", "m-17")
    assert looked_up == [BADGE_IDM]
    assert audit == [
        (
            "approval.grant_issued",
            "m-17",
            {"lane": "lane-3", "device": "lane3-nfc", "badge": badge_fingerprint(BADGE_IDM)},
        )
    ]
    assert BADGE_IDM not in repr(audit)
    assert scans.seen == [], "a badge is never sent to the register as a scan"
    assert grants.redeem(event.grant, "lane-3") == "m-17"
    assert grants.redeem(event.grant, "lane-3") is None, "single use"


async def test_one_reader_in_auto_mode_grants_for_a_badge_and_scans_any_other_tag(
    bus: EventBus,
    collect: Callable[..., Collector],
    port: int,
    tags: list[EmulatedType3Tag],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge")
    grants_seen = collect(ApprovalGrantEvent)
    scans = collect(ScanEvent)
    statuses = collect(DeviceStatusEvent)
    audit: list[tuple[str, str, dict[str, object]]] = []

    async def manager_for_badge(uid_hex: str) -> str | None:
        return "m-17" if uid_hex == BADGE_IDM else None

    async def record(action: str, subject: str, detail: dict[str, object]) -> None:
        audit.append((action, subject, detail))

    grants = ApprovalGrants(bus, ttl_s=120)
    router = LaneRouter(bus, LanesSettings(), BadgeApprovals(grants, manager_for_badge, record))
    settings = reader_settings(port, mode=None)
    assert settings.mode == "auto", "one reader serves both jobs unless told otherwise"
    badge = EmulatedType3Tag(port, BADGE_IDM, [ndef.TextRecord("staff")])
    customer = EmulatedType3Tag(port, TAG_IDM, customer_tag_records())
    tags.extend([badge, customer])
    reader = NfcReader(settings, router)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(reader.run()), group.create_task(router.run())]
        badge.present()
        granted = await grants_seen.next()
        await asyncio.to_thread(badge.remove)
        customer.present()
        scan = await scans.next()
        for task in tasks:
            task.cancel()
    assert (granted.lane, granted.manager_id) == ("lane-3", "m-17")
    assert scans.seen == [scan], "the badge never became a scan"
    assert (scan.lane, scan.device, scan.symbology, scan.data) == (
        "lane-3",
        "lane3-nfc",
        "nfc",
        TAG_IDM,
    )
    assert scan.parsed == {"uid": TAG_IDM, "ndef": CUSTOMER_TAG_NDEF}
    published = [e.model_dump_json() for e in [*grants_seen.seen, *scans.seen, *statuses.seen]]
    assert statuses.seen
    assert not [e for e in published if BADGE_IDM in e], "nothing on the bus names the badge"
    assert BADGE_IDM not in caplog.text
    assert badge_fingerprint(BADGE_IDM) in caplog.text, "the log names the badge by fingerprint"
    assert audit == [
        (
            "approval.grant_issued",
            "m-17",
            {"lane": "lane-3", "device": "lane3-nfc", "badge": badge_fingerprint(BADGE_IDM)},
        )
    ], "a customer's tag is not audited as a badge"
    assert grants.redeem(granted.grant, "lane-3") == "m-17"


async def test_reader_that_cannot_open_reports_and_retries(sink: RecordingSink) -> None:
    attempts = 0
    opened = asyncio.Event()
    loop = asyncio.get_running_loop()

    def open_frontend(path: str) -> object:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise OSError(19, "No such device")
        loop.call_soon_threadsafe(opened.set)
        raise OSError(16, "still not there")

    settings = NfcReaderSettings(id="n1", lane="lane-1", path="usb", reconnect_s=0.01)
    task = asyncio.create_task(NfcReader(settings, sink, open_frontend).run())
    try:
        _, _state, detail = await sink.state("disconnected")
        assert "No such device" in detail
        await asyncio.wait_for(opened.wait(), 5)
        assert attempts >= 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
