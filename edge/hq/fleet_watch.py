"""`edge-gateway fleet`: subscribe to every gateway's retained state and health, and show them.

The retained messages arrive right after the subscription; a sentinel message the tool
sends itself after its SUBACK comes back behind them, so the first table printed already
holds the whole fleet (no guessing with a delay).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from typing import TextIO

from edge.contract.payloads import Malformed
from edge.contract.topics import fleet_filter
from edge.hq.fleet import FleetView
from edge.mqtt.client import Message, MqttClient
from edge.mqtt.settings import BrokerSettings

log = logging.getLogger(__name__)

QUEUE_MAX = 100_000
CLEAR = "\x1b[H\x1b[2J"


class FleetWatcher:
    """A FleetView kept current from the broker; `synced` is set once the retained burst is in."""

    def __init__(self, broker: BrokerSettings, prefix: str, client_id: str) -> None:
        self.view = FleetView(prefix)
        self.synced = asyncio.Event()
        self.malformed = 0
        self._sentinel = f"{prefix}/_fleet/{client_id}"
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=QUEUE_MAX)
        self.client = MqttClient(
            broker,
            client_id=client_id,
            name="fleet",
            on_message=self._received,
            subscriptions=[
                (fleet_filter(prefix, "state"), 1),
                (fleet_filter(prefix, "health"), 0),
                (fleet_filter(prefix, "alerts"), 1),
                (self._sentinel, 1),
            ],
            on_connect=self._ping,
        )

    async def _ping(self) -> None:
        self.client.publish(self._sentinel, b"{}", qos=1)

    def _received(self, msg: Message) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(msg)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.client.run(), name="fleet-mqtt")
            tg.create_task(self._apply_loop(), name="fleet-apply")

    async def _apply_loop(self) -> None:
        while True:
            msg = await self._queue.get()
            if msg.topic == self._sentinel:
                self.synced.set()
                continue
            try:
                self.view.apply(msg)
            except Malformed as exc:
                self.malformed += 1
                log.debug("ignored %s: %s", msg.topic, exc)


async def watch_fleet(
    broker: BrokerSettings,
    prefix: str,
    stop: asyncio.Event,
    *,
    json_out: bool,
    once: bool,
    interval_s: float,
    out: TextIO = sys.stdout,
) -> int:
    watcher = FleetWatcher(broker, prefix, f"fleet-{os.getpid()}")
    async with watcher.client, asyncio.TaskGroup() as tg:
        task = tg.create_task(watcher.run(), name="fleet-watcher")
        try:
            async with asyncio.timeout(broker.connect_timeout_s * 3):
                await watcher.synced.wait()
        except TimeoutError:
            print(
                f"cannot read the fleet from {broker.host}:{broker.port}: {watcher.client.state}",
                file=sys.stderr,
            )
            task.cancel()
            return 1
        while True:
            if json_out:
                print(json.dumps(watcher.view.rows()), file=out)
            else:
                print(("" if once else CLEAR) + watcher.view.render(), file=out, flush=True)
            if once:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):
                    await stop.wait()
            if stop.is_set():
                break
        task.cancel()
    return 0
