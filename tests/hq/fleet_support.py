"""Real pieces for the fleet page and /metrics tests: simulated gateways speaking the MQTT
contract with paho, and the HQ service (in process, on a real broker and an SQLite store,
with the `FleetServer` the runner starts) on its own event loop in a thread, so synchronous
Selenium calls never block it.

Waiting is on what HQ applied (a FleetView listener), never on a fixed delay.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge.contract.payloads import dumps
from edge.contract.timefmt import iso, utcnow
from edge.contract.topics import GatewayTopics
from edge.hq.fleet import FleetView
from edge.hq.processor import SimulatedErp, SimulatedProcessor, SimulatedSettings
from edge.hq.service import HqService, HqServiceSettings
from edge.hq.store import HqStore
from edge.hq.web import FleetServer, stats_of
from tests.hqlink.broker import free_port
from tests.hqlink.harness import PREFIX, fast_broker

T = TypeVar("T")
WAIT_S = 15.0


class SimGateway:
    """One store gateway: birth with a Will, retained health, alerts raised and cleared,
    and an ungraceful end (DISCONNECT with Will, so the broker publishes `offline`)."""

    def __init__(self, broker_port: int, store_id: str, gateway_id: str = "gw-01") -> None:
        self.port = broker_port
        self.topics = GatewayTopics(PREFIX, store_id, gateway_id)
        self.bd_seq = 0
        self.open: dict[str, dict[str, Any]] = {}
        self.client: paho.Client | None = None

    def connect(self, version: str = "1.4.0") -> SimGateway:
        self.bd_seq += 1
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sim-{self.topics.store_id}-{self.topics.gateway_id}",
            protocol=paho.MQTTv5,
        )
        client.will_set(
            self.topics.state, dumps({"state": "offline", "bd_seq": self.bd_seq}), 1, True
        )
        connected = threading.Event()
        client.on_connect = lambda *_args: connected.set()
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        assert connected.wait(WAIT_S), "simulated gateway could not connect"
        self.client = client
        birth = {"state": "online", "version": version, "bd_seq": self.bd_seq}
        self._publish(self.topics.state, {**birth, "started_at": iso(utcnow())}, qos=1, retain=True)
        return self

    def health(self, pending: int, oldest_s: float | None, **extra: Any) -> None:
        body = {
            "at": iso(utcnow()),
            "version": "1.4.0",
            "link": {"state": "online", "protocol": "5", "connected_since": iso(utcnow())},
            "outbox": {"pending": pending, "oldest_pending_age_s": oldest_s, "high_water": 1000},
            "last_hq_ack_at": iso(utcnow()),
            "refunds_today": 2,
            "devices": {"scanner-1": {"kind": "scanner", "lane": "1", "state": "ok"}},
            "disk_free_bytes": 8_000_000_000,
            "alerts_open": list(self.open.values()),
            **extra,
        }
        self._publish(self.topics.health, body, qos=0, retain=True)

    def alert(self, name: str, severity: str, detail: str, *, cleared: bool = False) -> None:
        entry = {"alert": name, "severity": severity, "detail": detail, "subject": ""}
        entry.update(at=iso(utcnow()), state="cleared" if cleared else "raised")
        if cleared:
            self.open.pop(name, None)
        else:
            self.open[name] = entry
        self._publish(self.topics.alerts, entry, qos=1, retain=False)

    def die(self) -> None:
        """Lose the connection the way a crash would look to HQ: the broker sends the Will."""
        client, self.client = self.client, None
        assert client is not None
        with_will = ReasonCode(PacketTypes.DISCONNECT, identifier=4)
        client.disconnect(reasoncode=with_will)
        client.loop_stop()

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def _publish(self, topic: str, body: Any, *, qos: int, retain: bool) -> None:
        assert self.client is not None
        info = self.client.publish(topic, dumps(body), qos=qos, retain=retain)
        info.wait_for_publish(WAIT_S)


class FleetHq:
    """The HQ service and its HTTP side, on a loop in a thread."""

    def __init__(self, broker_port: int, workdir: Path, *, refresh_s: float = 0.5) -> None:
        self.http_port = free_port()
        self.refresh_s = refresh_s
        self.settings = HqServiceSettings(
            broker=fast_broker(broker_port), db_path=workdir / "hq.sqlite3", instance="hq-web"
        )
        self.service = HqService(
            self.settings,
            HqStore(self.settings.store_url()),
            SimulatedProcessor(SimulatedSettings()),
            SimulatedErp(),
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="fleet-hq", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def fleet(self) -> FleetView:
        return self.service.fleet

    def start(self) -> FleetHq:
        self._thread.start()
        assert self._ready.wait(WAIT_S), f"fleet HQ did not start: {self._error!r}"
        assert self._error is None, repr(self._error)
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "fleet HQ did not stop"

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        service = self.service
        server = FleetServer(
            stats_of(service), "127.0.0.1", self.http_port, refresh_s=self.refresh_s
        )
        async with service, server, asyncio.TaskGroup() as tg:
            assert server.listening
            task = tg.create_task(service.run())
            async with asyncio.timeout(WAIT_S):
                await service.client.wait_connected()
            self._ready.set()
            await self._stop.wait()
            task.cancel()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on HQ's loop and return its result."""
        assert self.loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(WAIT_S + 5)

    def wait_for(self, predicate: Callable[[FleetView], T], within: float = WAIT_S) -> T:
        """Re-check `predicate` on HQ's loop after every applied message until truthy."""

        async def waiting() -> T:
            changed = asyncio.Event()
            fleet = self.fleet
            listener: Callable[[Any], None] = lambda _addr: changed.set()  # noqa: E731
            fleet.listeners.append(listener)
            try:
                async with asyncio.timeout(within):
                    while not (result := predicate(fleet)):
                        changed.clear()
                        await changed.wait()
                    return result
            finally:
                fleet.listeners.remove(listener)

        return self.run(waiting())


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR; fails on anything that is not a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR", "PNG without IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)
