"""PC/SC through a real pcscd and the vpcd virtual reader: UID via FF CA, badges, removal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edge.bus import EventBus
from edge.devices.pcsc_reader import PcscReader
from edge.devices.settings import PcscReaderSettings
from edge.events import ApprovalGrantEvent
from edge.lanes.approvals import ApprovalGrants, BadgeApprovals, badge_fingerprint
from edge.lanes.router import LaneRouter
from edge.lanes.settings import LanesSettings

from .conftest import Collector, RecordingSink
from .vpcd_card import VirtualCard

READER = "Virtual PCD 00 00"


def settings(reader: str = READER, mode: str = "approvals") -> PcscReaderSettings:
    return PcscReaderSettings(
        id="lane5-badge", lane="lane-5", reader=reader, mode=mode, reconnect_s=0.05
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


async def test_missing_reader_is_reported_and_retried(vpcd: int, sink: RecordingSink) -> None:
    task = asyncio.create_task(PcscReader(settings(reader="ACR122U"), sink).run())
    try:
        _, _, detail = await sink.state("disconnected")
        assert "ACR122U" in detail
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
