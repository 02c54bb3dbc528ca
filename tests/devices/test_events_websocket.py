"""End to end: raw key events on a pipe -> reader -> lane router -> hub -> a real WebSocket.

The scanners connect before any register does, so each lane's `device.status` is held for
the lane's first register.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from edge.api.problems import ProblemError, problem_middleware
from edge.api.routes_events import EventsApi
from edge.bus import EventBus
from edge.devices.hotplug import PollingWatcher
from edge.devices.keyboard_scanners import KeyboardScanners
from edge.devices.settings import DevicesSettings, KeyboardScannerSettings
from edge.events import ApprovalGrantEvent, DeviceStatusEvent
from edge.lanes.hub import LaneHub
from edge.lanes.router import LaneRouter
from edge.lanes.settings import LanesSettings

from .conftest import Collector
from .evdev_pipe import KeyWriter
from .test_keyboard_hotplug import PORT_A, PORT_B, PipeFinder

TOKEN = "test-register-token"
MONITOR_TOKEN = "test-monitor-token"
LANE1_TOKEN = "test-lane-1-register-token"


@dataclass(frozen=True)
class Caller:
    role: str
    lane: str | None = None
    client_id: str = "cl_test"


TOKENS = {
    TOKEN: Caller("register"),
    MONITOR_TOKEN: Caller("monitor"),
    LANE1_TOKEN: Caller("register", "lane-1"),
}


async def authorize(request: web.Request, roles: frozenset[str]) -> Caller:
    caller = TOKENS.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
    if caller is None:
        raise ProblemError("unauthorized", "send Authorization: Bearer <token>")
    return caller


@dataclass
class Gateway:
    client: TestClient[web.Request, web.Application]
    writers: dict[str, KeyWriter]

    async def connect(self, query: str, token: str = TOKEN) -> web.WebSocketResponse:
        ws: web.WebSocketResponse = await self.client.ws_connect(
            f"/v1/events?{query}", headers={"Authorization": f"Bearer {token}"}
        )
        return ws


@pytest.fixture
async def gateway(bus: EventBus, collect: Callable[..., Collector]) -> AsyncIterator[Gateway]:
    statuses = collect(DeviceStatusEvent)
    finder = PipeFinder()
    writers = {
        "lane-1": finder.plug("/dev/input/event5", PORT_A),
        "lane-2": finder.plug("/dev/input/event6", PORT_B),
    }
    devices = DevicesSettings(
        keyboards=[
            KeyboardScannerSettings(id="lane1-scanner", lane="lane-1", path=PORT_A),
            KeyboardScannerSettings(id="lane2-scanner", lane="lane-2", path=PORT_B),
        ]
    )
    hub = LaneHub(bus, LanesSettings(replay_s=10))
    router = LaneRouter(bus, LanesSettings())
    app = web.Application(middlewares=[problem_middleware])
    for route in EventsApi(hub, authorize).routes():
        app.router.add_route(route.method, route.path, route.handler)
    async with hub, TestClient(TestServer(app)) as client:
        task = asyncio.create_task(
            KeyboardScanners(devices, router, finder, PollingWatcher(5)).run()
        )
        for _ in range(2):
            await statuses.until(lambda ev: ev.state == "connected")
        yield Gateway(client, writers)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def receive(ws: web.WebSocketResponse) -> dict[str, object]:
    message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type == WSMsgType.TEXT, message
    data: dict[str, object] = message.json()
    return data


async def test_scan_reaches_the_lane_register_over_websocket(gateway: Gateway) -> None:
    lane1 = await gateway.connect("lane=lane-1")
    lane2 = await gateway.connect("lane=lane-2")
    for ws, device in ((lane1, "lane1-scanner"), (lane2, "lane2-scanner")):
        held = await receive(ws)  # the scanner connected before any register of its lane
        assert (held["type"], held["device"], held["state"]) == (
            "device.status",
            device,
            "connected",
        )
    gateway.writers["lane-1"].type("]C1010950600013435210ABC\x1d17261231\r")
    gateway.writers["lane-2"].type("R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0\r")
    got1, got2 = await receive(lane1), await receive(lane2)
    assert {k: got1[k] for k in ("type", "lane", "device", "symbology", "data")} == {
        "type": "scan",
        "lane": "lane-1",
        "device": "lane1-scanner",
        "symbology": "gs1-128",
        "data": "010950600013435210ABC\x1d17261231",
    }
    assert isinstance(got1["parsed"], dict)
    assert got1["parsed"]["batch"] == "ABC"
    assert isinstance(got1["at"], str)
    assert got1["at"].endswith("Z")
    assert (got2["lane"], got2["data"]) == ("lane-2", "R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0")
    await lane1.close()
    await lane2.close()


async def test_register_reconnecting_with_after_gets_missed_scans(gateway: Gateway) -> None:
    ws = await gateway.connect("lane=lane-1")
    monitor = await gateway.connect("")  # store-wide: shows when the missed scans were routed
    assert (await receive(ws))["type"] == "device.status"
    gateway.writers["lane-1"].type("first\r")
    first = await receive(ws)
    await ws.close()
    gateway.writers["lane-1"].type("missed-1\r")
    gateway.writers["lane-1"].type("missed-2\r")
    assert [(await receive(monitor))["data"] for _ in range(3)] == ["first", "missed-1", "missed-2"]
    ws = await gateway.connect(f"lane=lane-1&after={first['id']}")
    assert [(await receive(ws))["data"] for _ in range(2)] == ["missed-1", "missed-2"]
    gateway.writers["lane-1"].type("live\r")
    assert (await receive(ws))["data"] == "live", "each missed scan came once, then live ones"
    await ws.close()
    await monitor.close()


async def test_a_scan_made_before_any_register_connects_reaches_the_next_one(
    gateway: Gateway,
) -> None:
    monitor = await gateway.connect("")  # store-wide: does not take what is held for lane 2
    gateway.writers["lane-2"].type("while-away\r")
    held_scan = await receive(monitor)
    assert held_scan["data"] == "while-away"

    first = await gateway.connect("lane=lane-2")  # no after: the app just (re)started
    got = [await receive(first), await receive(first)]
    assert [(m["type"], m.get("data")) for m in got] == [
        ("device.status", None),
        ("scan", "while-away"),
    ]
    assert got[1]["id"] == held_scan["id"]

    second = await gateway.connect("lane=lane-2")  # the first one took it: nothing is held
    gateway.writers["lane-2"].type("live\r")
    assert (await receive(second))["data"] == "live"
    assert (await receive(first))["data"] == "live", "no message twice to the same register"
    for ws in (first, second, monitor):
        await ws.close()


async def test_after_and_held_messages_together_give_each_message_once(
    gateway: Gateway,
) -> None:
    monitor = await gateway.connect("")
    register = await gateway.connect("lane=lane-1")
    assert (await receive(register))["type"] == "device.status"
    gateway.writers["lane-1"].type("seen\r")
    seen = await receive(register)
    await register.close()
    for data in ("away-1", "away-2"):
        gateway.writers["lane-1"].type(f"{data}\r")
    assert [(await receive(monitor))["data"] for _ in range(3)] == ["seen", "away-1", "away-2"]

    back = await gateway.connect(f"lane=lane-1&after={seen['id']}")
    assert [(await receive(back))["data"] for _ in range(2)] == ["away-1", "away-2"]
    restarted = await gateway.connect("lane=lane-1")  # `back` took them: nothing held now
    gateway.writers["lane-1"].type("live\r")
    assert (await receive(restarted))["data"] == "live"
    assert (await receive(back))["data"] == "live"
    for ws in (back, restarted, monitor):
        await ws.close()


async def upgrade(gateway: Gateway, query: str, token: str) -> tuple[int, str, dict[str, object]]:
    """A WebSocket handshake whose refusal (status, media type, body) the test can read."""
    response = await gateway.client.get(
        f"/v1/events?{query}",
        headers={
            "Authorization": f"Bearer {token}",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    return response.status, response.content_type, await response.json(content_type=None)


async def test_a_lane_bound_register_hears_only_its_own_lane(gateway: Gateway) -> None:
    status, media_type, problem = await upgrade(gateway, "lane=lane-2", LANE1_TOKEN)
    assert (status, media_type) == (403, "application/problem+json")
    assert str(problem["type"]).endswith("/forbidden")
    assert problem["errors"] == [{"field": "lane", "message": "not this client's lane"}]

    monitor = await gateway.connect("")
    bound = await gateway.connect("", token=LANE1_TOKEN)  # no lane: its own lane
    held = await receive(bound)
    assert (held["type"], held["lane"]) == ("device.status", "lane-1")
    gateway.writers["lane-2"].type("not-mine\r")
    assert (await receive(monitor))["data"] == "not-mine"
    gateway.writers["lane-1"].type("mine\r")
    got = await receive(bound)
    assert (got["lane"], got["data"]) == ("lane-1", "mine")
    same = await gateway.connect("lane=lane-1", token=LANE1_TOKEN)
    gateway.writers["lane-1"].type("again\r")
    assert (await receive(same))["data"] == "again"
    for ws in (bound, same, monitor):
        await ws.close()


async def test_only_a_role_that_may_refund_receives_the_grant_token(
    gateway: Gateway, bus: EventBus
) -> None:
    register = await gateway.connect("lane=lane-5")
    monitor_on_lane = await gateway.connect("lane=lane-5", token=MONITOR_TOKEN)
    bus.publish(
        ApprovalGrantEvent(
            lane="lane-5", grant="g_secret-token", manager_id="m-17", expires_at=datetime.now(UTC)
        )
    )
    for_register, for_monitor = await receive(register), await receive(monitor_on_lane)
    assert for_register["grant"] == "g_secret-token"
    assert for_monitor["type"] == "approval.granted"
    assert "grant" not in for_monitor, "a monitor-role client never holds a usable grant"
    await register.close()
    await monitor_on_lane.close()


async def test_no_token_is_refused_before_the_upgrade(gateway: Gateway) -> None:
    response = await gateway.client.get("/v1/events?lane=lane-1")
    assert response.status == 401
    assert response.content_type == "application/problem+json"


async def test_bad_after_is_a_validation_problem(gateway: Gateway) -> None:
    response = await gateway.client.get(
        "/v1/events?after=yesterday", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status == 422
    body = await response.json()
    assert body["errors"][0]["field"] == "after"


async def test_closing_the_hub_closes_registers_promptly(bus: EventBus) -> None:
    hub = LaneHub(bus, LanesSettings())
    app = web.Application(middlewares=[problem_middleware])
    for route in EventsApi(hub, authorize).routes():
        app.router.add_route(route.method, route.path, route.handler)
    async with TestClient(TestServer(app)) as client:
        async with hub:
            ws = await client.ws_connect(
                "/v1/events?lane=lane-1", headers={"Authorization": f"Bearer {TOKEN}"}
            )
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type == WSMsgType.CLOSE
        assert ws.close_code == 1001


async def test_a_failure_after_the_upgrade_closes_with_1011_logged_and_counted(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the upgrade no problem document can be sent: the subscriber gets close code
    1011 with a request id, the failure is logged once under that id and counted."""

    async def broken_send(ws: web.WebSocketResponse, sub: object) -> None:
        raise RuntimeError("injected send failure")

    monkeypatch.setattr(EventsApi, "_send", staticmethod(broken_send))
    failures: list[int] = []
    hub = LaneHub(bus, LanesSettings())
    app = web.Application(middlewares=[problem_middleware])
    for route in EventsApi(hub, authorize, failed=lambda: failures.append(1)).routes():
        app.router.add_route(route.method, route.path, route.handler)
    async with hub, TestClient(TestServer(app)) as client:
        ws = await client.ws_connect(
            "/v1/events?lane=lane-1", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type == WSMsgType.CLOSE
        assert ws.close_code == 1011
        request_id = str(message.extra).rsplit(" ", 1)[-1].rstrip(")")
        assert len(request_id) == 16, message.extra
        assert request_id.startswith("r"), message.extra
    assert failures == [1]
    logged = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert len(logged) == 1
    assert "injected send failure" in logged[0]
