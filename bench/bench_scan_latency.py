"""Scan-to-register latency: raw key events written -> decoded `scan` on a register's WebSocket.

The scan goes through the real path: python-evdev's async read (a pipe carries the raw
`input_event` records), xkb decoding, the wedge assembler, payload parsing,
the lane router, the event bus, the lane hub and an aiohttp WebSocket on loopback. Beside
it, in the same run and on the same loop, a bare aiohttp WebSocket echo round trip shows
the floor the transport alone costs.

Run from the repository root:  .venv/bin/python -m bench.bench_scan_latency [--scans 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from edge.api.auth import Principal
from edge.api.routes_events import EventsApi
from edge.bus import EventBus
from edge.devices.hotplug import PollingWatcher
from edge.devices.keyboard_scanners import KeyboardScanners
from edge.devices.settings import DevicesSettings, KeyboardScannerSettings
from edge.events import DeviceStatusEvent
from edge.lanes.hub import LaneHub
from edge.lanes.router import LaneRouter
from edge.lanes.settings import LanesSettings

from .keyboard_pipe import PipeFinder
from .report import Figure

SCAN = "]C1010950600013435210ABC123\x1d17261231"  # GS1-128: GTIN, batch, expiry
PORT_A = "pci-0000:00:14.0-usb-0:1.1:1.0"


REGISTER = Principal(client_id="cl_bench", role="register")


async def allow(request: web.Request, roles: frozenset[str]) -> Principal:
    """Every request is the bench's register: token checks are not what is measured."""
    return REGISTER


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        await ws.send_str(message.data)
    return ws


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000, ordered[-1] * 1000


async def measure(times: int, once: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await once()  # type: ignore[misc]
        samples.append(time.perf_counter() - started)
    return samples


async def run(scans: int) -> tuple[float, float]:
    """Prints the latencies; returns the p99 of scans and of the bare echo, in ms."""
    bus = EventBus()
    connected = asyncio.Event()
    bus.subscribe(DeviceStatusEvent, lambda ev: ev.state == "connected" and connected.set())
    finder = PipeFinder()
    writer = finder.plug("/dev/input/event5", PORT_A)
    devices = DevicesSettings(
        keyboards=[KeyboardScannerSettings(id="bench", lane="lane-1", path=PORT_A)]
    )
    hub = LaneHub(bus, LanesSettings(subscriber_queue=10_000))
    app = web.Application()
    for route in EventsApi(hub, allow).routes():
        app.router.add_route(route.method, route.path, route.handler)
    app.router.add_get("/echo", echo)
    raw_scan = writer.text(SCAN + "\r")
    async with hub, TestClient(TestServer(app)) as client:
        readers = KeyboardScanners(
            devices, LaneRouter(bus, LanesSettings()), finder, PollingWatcher(60)
        )
        task = asyncio.create_task(readers.run(), name="bench-keyboards")
        await asyncio.wait_for(connected.wait(), 5)
        scan_ws = await client.ws_connect("/v1/events?lane=lane-1")
        held = await scan_ws.receive_json()  # the scanner connected before the register
        assert held["type"] == "device.status"
        echo_ws = await client.ws_connect("/echo")

        async def one_scan() -> None:
            writer.write(raw_scan)
            message = await scan_ws.receive()
            assert message.type == WSMsgType.TEXT
            assert message.json()["data"] == SCAN[3:]

        async def one_echo() -> None:
            await echo_ws.send_str('{"type":"scan","data":"x"}')
            await echo_ws.receive()

        await measure(50, one_scan)  # warm-up: caches, keymap, first-connection costs
        await measure(50, one_echo)
        scan_samples, echo_samples = [], []
        for _ in range(scans // 100):  # interleaved so both see the same machine state
            scan_samples += await measure(100, one_scan)
            echo_samples += await measure(100, one_echo)
        await scan_ws.close()
        await echo_ws.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    writer.close()
    events = len(raw_scan) // 24
    print(
        f"scan-to-register latency, {len(scan_samples)} scans"
        f" of {len(SCAN)} chars ({events} input events)"
    )
    print("  path                                   p50 ms   p99 ms   max ms")
    for name, samples in (
        ("raw events -> WebSocket scan", scan_samples),
        ("bare aiohttp WebSocket echo", echo_samples),
    ):
        p50, p99, worst = percentiles(samples)
        print(f"  {name:<38} {p50:7.3f}  {p99:7.3f}  {worst:7.3f}")
    return percentiles(scan_samples)[1], percentiles(echo_samples)[1]


def figures(quick: bool, scans: int | None = None) -> list[Figure]:
    import uvloop  # noqa: PLC0415 - as the daemon runs

    scan_p99, echo_p99 = uvloop.run(run(scans or (300 if quick else 1000)))
    return [
        Figure(
            "scan_latency",
            "raw key events -> lane WebSocket, p99",
            scan_p99,
            "ms",
            echo_p99,
            "bare aiohttp WebSocket echo p99",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as the daemon does")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop  # noqa: PLC0415

        uvloop.run(run(args.scans))
    else:
        asyncio.run(run(args.scans))


if __name__ == "__main__":
    main()
