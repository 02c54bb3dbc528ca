"""The lane hub: lane routing, replay for reconnecting registers, slow clients, grants."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from edge.bus import EventBus
from edge.events import ApprovalGrantEvent, DeviceStatusEvent, RefundUpdated, ScanEvent
from edge.lanes.hub import LaneHub
from edge.lanes.settings import LanesSettings
from edge.lanes.subscription import Subscription

from .conftest import Clock

AT = datetime(2026, 11, 22, 10, 40, tzinfo=UTC)


def scan(lane: str, data: str) -> ScanEvent:
    return ScanEvent(
        lane=lane,
        device=f"{lane}-scanner",
        symbology="code-128",
        data=data,
        parsed={"kind": "text"},
        at=AT,
    )


async def drain(sub: Subscription, count: int) -> list[dict[str, object]]:
    return [await asyncio.wait_for(anext(sub), 5) for _ in range(count)]


@pytest.fixture
async def hub(bus: EventBus) -> LaneHub:
    return LaneHub(bus, LanesSettings(replay_s=10, subscriber_queue=4), first_id=100)


async def test_scans_go_to_their_lane_and_to_store_monitors(bus: EventBus, hub: LaneHub) -> None:
    async with hub:
        lane1, lane2, monitor = hub.attach("lane-1"), hub.attach("lane-2"), hub.attach(None)
        bus.publish(scan("lane-1", "A"))
        bus.publish(scan("lane-2", "B"))
        got1, got2, got_all = await drain(lane1, 1), await drain(lane2, 1), await drain(monitor, 2)
    assert got1 == [
        {
            "type": "scan",
            "lane": "lane-1",
            "device": "lane-1-scanner",
            "symbology": "code-128",
            "data": "A",
            "parsed": {"kind": "text"},
            "at": "2026-11-22T10:40:00Z",
            "id": 101,
        }
    ]
    assert [m["data"] for m in got2] == ["B"]
    assert [m["id"] for m in got_all] == [101, 102]


async def test_refund_updates_reach_everyone_and_device_status_its_lane(
    bus: EventBus, hub: LaneHub
) -> None:
    async with hub:
        lane1, lane2 = hub.attach("lane-1"), hub.attach("lane-2")
        bus.publish(
            DeviceStatusEvent(lane="lane-2", device="d", kind="serial", state="disconnected", at=AT)
        )
        bus.publish(
            RefundUpdated(return_id="R-1", status="settled", refund={"total": "1.00"}, at=AT)
        )
        (m1,) = await drain(lane1, 1)
        m2a, m2b = await drain(lane2, 2)
    assert m1["type"] == "refund.updated"
    assert (m2a["type"], m2a["state"], m2b["type"]) == (
        "device.status",
        "disconnected",
        "refund.updated",
    )


async def test_reconnecting_register_gets_what_it_missed_within_the_window(bus: EventBus) -> None:
    clock = Clock(1000.0)
    hub = LaneHub(bus, LanesSettings(replay_s=10), clock=clock, first_id=0)
    async with hub:
        first = hub.attach("lane-3")
        bus.publish(scan("lane-3", "one"))
        (seen,) = await drain(first, 1)
        first.close()  # the register's Wi-Fi drops
        bus.publish(scan("lane-3", "two"))
        bus.publish(scan("lane-9", "other lane"))
        bus.publish(scan("lane-3", "three"))
        clock.now += 5
        again = hub.attach("lane-3", after=int(str(seen["id"])))
        assert [m["data"] for m in await drain(again, 2)] == ["two", "three"]
        clock.now += 11  # past replay_s: nothing is kept for a register gone this long
        late = hub.attach("lane-3", after=int(str(seen["id"])))
        bus.publish(scan("lane-3", "four"))
        assert [m["data"] for m in await drain(late, 1)] == ["four"]


async def test_a_slow_subscriber_is_dropped_not_buffered_forever(
    bus: EventBus, hub: LaneHub
) -> None:
    async with hub:
        slow, fast = hub.attach("lane-1"), hub.attach("lane-1")
        for i in range(4):
            bus.publish(scan("lane-1", str(i)))
        assert len(await drain(fast, 4)) == 4
        bus.publish(scan("lane-1", "overflow"))
        assert slow.dropped
        assert slow.closed
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(slow), 5)
        assert [m["data"] for m in await drain(fast, 1)] == ["overflow"]
        assert hub.dropped_subscribers == 1
        assert hub.subscriber_count == 1


async def test_grants_reach_the_lane_but_monitors_never_see_the_token(
    bus: EventBus, hub: LaneHub
) -> None:
    async with hub:
        register, monitor, other = hub.attach("lane-5"), hub.attach(None), hub.attach("lane-6")
        bus.publish(
            ApprovalGrantEvent(lane="lane-5", grant="g_secret", manager_id="m-17", expires_at=AT)
        )
        (for_register,) = await drain(register, 1)
        (for_monitor,) = await drain(monitor, 1)
        bus.publish(scan("lane-6", "x"))
        (for_other,) = await drain(other, 1)
    assert for_register["grant"] == "g_secret"
    assert "grant" not in for_monitor
    assert for_monitor["manager_id"] == "m-17"
    assert for_other["data"] == "x", "lane 6 never got lane 5's grant"


async def test_closing_the_hub_ends_every_subscription_and_unsubscribes(
    bus: EventBus, hub: LaneHub
) -> None:
    async with hub:
        sub = hub.attach("lane-1")
        waiting = asyncio.create_task(anext(sub))
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
    bus.publish(scan("lane-1", "after close"))
    assert hub.last_id == 100, "the hub no longer listens"
