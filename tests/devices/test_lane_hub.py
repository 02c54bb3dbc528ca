"""The lane hub: lane routing, replay for reconnecting registers, slow clients, grants."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from edge.bus import EventBus
from edge.domain.views import RefundStatus, RefundView, adapter
from edge.events import ApprovalGrantEvent, DeviceStatusEvent, RefundUpdated, ScanEvent
from edge.lanes.hub import LaneHub
from edge.lanes.settings import LanesSettings
from edge.lanes.subscription import Subscription

from .conftest import Clock

AT = datetime(2026, 11, 22, 10, 40, tzinfo=UTC)
MARKERS = itertools.count()


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
        bus.publish(refund_updated("R-1"))
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


def refund_updated(return_id: str, status: RefundStatus = "settled") -> RefundUpdated:
    """A `refund.updated` for a one-dollar goodwill credit (the hub forwards it whole)."""
    stamp = AT.isoformat().replace("+00:00", "Z")
    zero = "0.00"
    refund = adapter(RefundView).validate_python(
        {
            "return_id": return_id,
            "sale_id": None,
            "kind": "goodwill",
            "status": status,
            "offline": False,
            "currency": "USD",
            "subtotal": "1.00",
            "discount": zero,
            "tax": zero,
            "total": "1.00",
            "shipping": {"amount": zero, "tax": zero},
            "lines": [],
            "tenders": [{"type": "store_credit", "amount": "1.00", "store_credit_code": "SC-1"}],
            "refund_to": "store_credit",
            "reason": "goodwill",
            "note": None,
            "approved_by": "m-17",
            "created_at": stamp,
            "updated_at": stamp,
            "processor_ref": None,
            "erp_ref": None,
            "decline_reason": None,
        }
    )
    return RefundUpdated.of(refund, AT)


def grant(lane: str, token: str, expires_at: datetime) -> ApprovalGrantEvent:
    return ApprovalGrantEvent(lane=lane, grant=token, manager_id="m-17", expires_at=expires_at)


async def pending(bus: EventBus, sub: Subscription) -> list[dict[str, object]]:
    """What was queued for `sub` so far: everything before a marker published now.

    The marker is a `refund.updated` (every subscriber gets it, no lane holds it); earlier
    markers that come back in a replay are left out.
    """
    marker = f"R-marker-{next(MARKERS)}"
    bus.publish(refund_updated(marker))
    out = []
    while (message := await asyncio.wait_for(anext(sub), 5)).get("return_id") != marker:
        if not str(message.get("return_id", "")).startswith("R-marker-"):
            out.append(message)
    return out


async def test_what_a_lane_heard_while_no_register_was_there_goes_to_the_next_one(
    bus: EventBus,
) -> None:
    clock = Clock(1000.0)
    hub = LaneHub(bus, LanesSettings(replay_s=10), clock=clock, first_id=0)
    async with hub:
        monitor = hub.attach(None, register=False)
        lane_monitor = hub.attach("lane-3", register=False)
        bus.publish(scan("lane-3", "while away"))
        bus.publish(
            DeviceStatusEvent(lane="lane-3", device="d", kind="serial", state="connected", at=AT)
        )
        bus.publish(scan("lane-4", "other lane"))
        await drain(monitor, 3)
        await drain(lane_monitor, 2)
        first = hub.attach("lane-3")  # no `after`: it cannot know an id
        assert [(m["type"], m.get("data")) for m in await drain(first, 2)] == [
            ("scan", "while away"),
            ("device.status", None),
        ]
        second = hub.attach("lane-3")
        bus.publish(scan("lane-3", "live"))
        assert [m["data"] for m in await drain(second, 1)] == ["live"], "the first took them"
        assert [m["data"] for m in await drain(first, 1)] == ["live"]
        first.close()
        second.close()
        bus.publish(scan("lane-3", "too old"))
        clock.now += 11  # held only for replay_s
        late = hub.attach("lane-3")
        bus.publish(scan("lane-3", "fresh"))
        assert [m["data"] for m in await drain(late, 1)] == ["fresh"]


async def test_a_message_a_register_received_is_not_held_for_the_next(bus: EventBus) -> None:
    hub = LaneHub(bus, LanesSettings(replay_s=10), clock=Clock(0.0), first_id=0)
    async with hub:
        present = hub.attach("lane-1")
        bus.publish(scan("lane-1", "taken"))
        await drain(present, 1)
        present.close()
        bus.publish(scan("lane-1", "missed"))
        assert [m["data"] for m in await pending(bus, hub.attach("lane-1"))] == ["missed"]


async def test_after_gets_everything_after_it_and_takes_what_was_held(bus: EventBus) -> None:
    hub = LaneHub(bus, LanesSettings(replay_s=10), clock=Clock(0.0), first_id=0)
    async with hub:
        bus.publish(scan("lane-1", "held"))  # no register yet: held
        register = hub.attach("lane-1")
        (held,) = await drain(register, 1)
        assert held["data"] == "held"
        bus.publish(scan("lane-1", "seen"))
        (seen,) = await drain(register, 1)
        register.close()
        bus.publish(scan("lane-1", "missed-1"))
        bus.publish(refund_updated("R-1"))
        bus.publish(scan("lane-1", "missed-2"))
        again = hub.attach("lane-1", after=int(str(seen["id"])))
        got = await pending(bus, again)
        assert [m.get("data", m["type"]) for m in got] == ["missed-1", "refund.updated", "missed-2"]
        from_start = hub.attach("lane-1", after=0)
        assert [m.get("data", m["type"]) for m in await pending(bus, from_start)] == [
            "held",
            "seen",
            "missed-1",
            "refund.updated",
            "missed-2",
        ], "after works as before: everything kept after that id"
        assert await pending(bus, hub.attach("lane-1")) == [], "`again` took the held ones"


async def test_a_held_grant_goes_to_the_next_register_while_valid_never_to_monitors(
    bus: EventBus,
) -> None:
    clock = Clock(0.0)
    wall = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    hub = LaneHub(bus, LanesSettings(replay_s=10), clock=clock, first_id=0, now=lambda: wall)
    async with hub:
        bus.publish(grant("lane-5", "g_short", wall + timedelta(seconds=3)))
        bus.publish(grant("lane-5", "g_long", wall + timedelta(seconds=120)))
        monitor = hub.attach("lane-5", register=False)
        assert [m["type"] for m in await pending(bus, monitor)] == [], (
            "a monitor does not take held grants"
        )
        store_wide = hub.attach(None)
        assert await pending(bus, store_wide) == [], "nor does a store-wide subscriber"
        on_lane_with_after = hub.attach("lane-5", after=0, register=False)
        notices = await pending(bus, on_lane_with_after)
        assert [("grant" in m, m["manager_id"]) for m in notices] == [
            (False, "m-17"),
            (False, "m-17"),
        ], "with after, a monitor sees the grants were issued, never the tokens"
        clock.now += 5  # g_short has expired; g_long is still good
        register = hub.attach("lane-5")
        assert [m["grant"] for m in await pending(bus, register)] == ["g_long"]
        assert await pending(bus, hub.attach("lane-5")) == [], "the register took it"


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
