"""PC/SC through a real pcscd and the vpcd virtual reader: UID via FF CA, badges, removal,
and one reader in `auto` mode serving both jobs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import ndef
import pytest

from edge.bus import EventBus
from edge.devices.pcsc_reader import PcscReader
from edge.devices.settings import PcscReaderSettings
from edge.events import ApprovalGrantEvent, DeviceStatusEvent, ScanEvent
from edge.lanes.approvals import ApprovalGrants, BadgeApprovals, badge_fingerprint
from edge.lanes.router import LaneRouter
from edge.lanes.settings import LanesSettings

from .conftest import Collector, RecordingSink
from .vpcd_card import VirtualCard, type2_memory

READER = "Virtual PCD 00 00"
BADGE = "04A1B2C3D4E5F6"
STICKER = "04112233445566"  # a customer's NTAG sticker
URI = "https://example.com/r/1"


def sticker_records() -> list[ndef.Record]:
    return [
        ndef.UriRecord(URI),
        ndef.TextRecord("hello"),
        ndef.Record("urn:nfc:ext:example.com:loyalty", "", b"\x01\xab"),
    ]


STICKER_NDEF = [
    {"type": "uri", "uri": URI},
    {"type": "text", "text": "hello"},
    {"type": "urn:nfc:ext:example.com:loyalty", "data": "01AB"},
]


def settings(reader: str = READER, mode: str | None = "approvals") -> PcscReaderSettings:
    """The reader on vpcd; `mode=None` leaves the mode at its default."""
    return PcscReaderSettings(
        id="lane5-badge",
        lane="lane-5",
        reader=reader,
        reconnect_s=0.05,
        **({} if mode is None else {"mode": mode}),
    )


async def test_card_uid_read_once_per_presentation(vpcd: int, sink: RecordingSink) -> None:
    reader = PcscReader(settings(mode="tags"), sink)
    task = asyncio.create_task(reader.run())
    card = VirtualCard(vpcd, "04A1B2C3D4E5F6")
    try:
        device, _, detail = await sink.state("connected")
        assert detail == READER
        card.insert()
        device, tag, mode = await sink.next("tap")
        assert (device.lane, tag.uid, mode) == ("lane-5", "04A1B2C3D4E5F6", "tags")
        assert card.apdus == [bytes.fromhex("FFCA000000")]
        await asyncio.to_thread(card.remove)
        second = VirtualCard(vpcd, "11223344")
        second.insert()
        _, tag, _ = await sink.next("tap")
        assert tag.uid == "11223344", "the first card was reported once, then the next one"
        await asyncio.to_thread(second.remove)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert reader.taps == 2


async def test_a_card_without_uid_support_is_counted_not_reported(
    vpcd: int, sink: RecordingSink
) -> None:
    reader = PcscReader(settings(mode="tags"), sink)
    task = asyncio.create_task(reader.run())
    card = VirtualCard(vpcd, "0102", answer_uid=False)
    try:
        await sink.state("connected")
        card.insert()
        assert await asyncio.to_thread(card.answered.wait, 5)
        good = VirtualCard(vpcd, "A0A1A2A3")
        await asyncio.to_thread(card.remove)
        good.insert()
        _, tag, _ = await sink.next("tap")
        assert tag.uid == "A0A1A2A3"
        assert reader.read_errors == 1
        await asyncio.to_thread(good.remove)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_badge_on_pcsc_reader_grants_approval(
    vpcd: int, bus: EventBus, collect: Callable[..., Collector]
) -> None:
    grants_seen = collect(ApprovalGrantEvent)
    audit: list[tuple[str, str, dict[str, object]]] = []
    audited = asyncio.Event()

    async def manager_for_badge(uid_hex: str) -> str | None:
        return {"04A1B2C3D4E5F6": "m-17"}.get(uid_hex)

    async def record(action: str, subject: str, detail: dict[str, object]) -> None:
        audit.append((action, subject, detail))
        audited.set()

    grants = ApprovalGrants(bus, ttl_s=120)
    router = LaneRouter(bus, LanesSettings(), BadgeApprovals(grants, manager_for_badge, record))
    reader = PcscReader(settings(), router)
    unknown, manager = VirtualCard(vpcd, "DEADBEEF"), VirtualCard(vpcd, "04A1B2C3D4E5F6")
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(reader.run()), group.create_task(router.run())]
        unknown.insert()
        await asyncio.wait_for(audited.wait(), 5)
        await asyncio.to_thread(unknown.remove)
        manager.insert()
        event = await grants_seen.next()
        await asyncio.to_thread(manager.remove)
        for task in tasks:
            task.cancel()
    assert (event.lane, event.manager_id) == ("lane-5", "m-17")
    assert audit[0] == (
        "badge.unknown",
        "lane-5",
        {"device": "lane5-badge", "badge": badge_fingerprint("DEADBEEF")},
    )
    assert audit[1][0] == "approval.grant_issued"
    assert "DEADBEEF" not in repr(audit)
    assert "04A1B2C3D4E5F6" not in repr(audit)


async def test_one_reader_in_auto_mode_grants_for_a_badge_and_scans_any_other_tag(
    vpcd: int,
    bus: EventBus,
    collect: Callable[..., Collector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge")
    grants_seen = collect(ApprovalGrantEvent)
    scans = collect(ScanEvent)
    statuses = collect(DeviceStatusEvent)
    audit: list[tuple[str, str, dict[str, object]]] = []

    async def manager_for_badge(uid_hex: str) -> str | None:
        return {BADGE: "m-17"}.get(uid_hex)

    async def record(action: str, subject: str, detail: dict[str, object]) -> None:
        audit.append((action, subject, detail))

    grants = ApprovalGrants(bus, ttl_s=120)
    router = LaneRouter(bus, LanesSettings(), BadgeApprovals(grants, manager_for_badge, record))
    reader_settings = settings(mode=None)
    assert reader_settings.mode == "auto", "one reader serves both jobs unless told otherwise"
    reader = PcscReader(reader_settings, router)
    badge = VirtualCard(vpcd, BADGE)
    sticker = VirtualCard(
        vpcd, STICKER, memory=type2_memory(bytes.fromhex(STICKER), sticker_records())
    )
    plain = VirtualCard(vpcd, "DEADBEEF")  # a MIFARE Classic: its UID is all it gives
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(reader.run()), group.create_task(router.run())]
        badge.insert()
        granted = await grants_seen.next()
        await asyncio.to_thread(badge.remove)
        sticker.insert()
        scan = await scans.next()
        await asyncio.to_thread(sticker.remove)
        plain.insert()
        plain_scan = await scans.next()
        await asyncio.to_thread(plain.remove)
        for task in tasks:
            task.cancel()
    assert (granted.lane, granted.manager_id) == ("lane-5", "m-17")
    assert scans.seen == [scan, plain_scan], "the badge never became a scan"
    assert (scan.lane, scan.device, scan.symbology, scan.data) == (
        "lane-5",
        "lane5-badge",
        "nfc",
        STICKER,
    )
    assert scan.parsed == {"uid": STICKER, "ndef": STICKER_NDEF}
    assert (plain_scan.data, plain_scan.parsed) == ("DEADBEEF", {"uid": "DEADBEEF", "ndef": []})
    assert badge.apdus == [bytes.fromhex("FFCA000000")], "a MIFARE Classic is not read further"
    published = [e.model_dump_json() for e in [*grants_seen.seen, *scans.seen, *statuses.seen]]
    assert statuses.seen
    assert not [e for e in published if BADGE in e], "nothing on the bus names the badge"
    assert BADGE not in caplog.text
    assert [action for action, _, _ in audit] == ["approval.grant_issued"]


async def test_ndef_of_a_type2_tag_is_read_four_pages_at_a_time(
    vpcd: int, sink: RecordingSink
) -> None:
    long_uri = "https://example.com/" + "r" * 300  # a message over 254 bytes: 3-byte length
    records = [ndef.UriRecord(long_uri), ndef.TextRecord("hello")]
    memory = type2_memory(bytes.fromhex(STICKER), records, data_bytes=496)
    reader = PcscReader(settings(mode="tags"), sink)
    task = asyncio.create_task(reader.run())
    card = VirtualCard(vpcd, STICKER, memory=memory)
    try:
        await sink.state("connected")
        card.insert()
        _, tag, _ = await sink.next("tap")
        await asyncio.to_thread(card.remove)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert (tag.uid, tag.records) == (
        STICKER,
        [{"type": "uri", "uri": long_uri}, {"type": "text", "text": "hello"}],
    )
    reads = [apdu for apdu in card.apdus if apdu[:3] == bytes.fromhex("FFB000")]
    assert [apdu[3] for apdu in reads] == list(range(3, 3 + 4 * len(reads), 4))
    assert len(reads) * 16 < len(memory), "reading stops at the end of the NDEF message"
    assert reader.read_errors == 0


async def test_missing_reader_is_reported_and_retried(vpcd: int, sink: RecordingSink) -> None:
    task = asyncio.create_task(PcscReader(settings(reader="ACR122U"), sink).run())
    try:
        _, _, detail = await sink.state("disconnected")
        assert "ACR122U" in detail
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
