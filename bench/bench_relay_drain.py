"""An outbox backlog drained end to end, beside raw paho QoS 1 publishing to the same broker.

Run: .venv/bin/python -m bench.bench_relay_drain [--events 100000] [--window N] [--dir PATH]

A fresh ledger gets `--events` pending `sale.recorded` events (about 600 bytes each, like a
small sale). A mosquitto is started on a free port, the reference HQ service runs as its own
process, and the gateway's HQ link runs here on uvloop, as in the daemon. The clock runs
from the link's start until every event is published, recorded once at HQ (one fsynced
transaction per batch), acked, and marked done in the ledger (batched, fsynced).
The baseline, measured in the same run against the same broker: a plain paho client
publishing the same payloads at QoS 1 with 20 messages in flight, counting PUBACKs only
(no consumer, no database, no end-to-end ack).

For scale, the same run also measures the drain's MQTT pattern with paho alone: one client
publishes the payloads at QoS 1 with the gateway's window, a second process acks each with a
QoS 1 publish, and nothing else happens (no envelope check, no database on either side).
That is as fast as the drain can be with paho at both ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import uvloop
from paho.mqtt.enums import CallbackAPIVersion

from edge.api.orders import OrderJournal
from edge.bus import EventBus
from edge.contract.payloads import dumps
from edge.contract.timefmt import utcnow
from edge.contract.topics import GatewayTopics
from edge.domain.ids import new_ulid
from edge.hqlink.link import HqLink
from edge.hqlink.settings import HqSettings
from edge.ledger.db import apply_migrations, open_sync
from edge.ledger.ledger import Ledger
from edge.ledger.outbox import Origin, append_event
from edge.mqtt.client import MqttClient
from edge.mqtt.settings import BrokerSettings

from .report import Figure, Target, print_table
from .support import ROOT, Mosquitto

ORIGIN = Origin("0042", "gw-01")
LINES = [
    {"line_id": str(n), "sku": f"SKU-{n:04d}", "quantity": 1, "unit_price": "9.99", "tax": "0.80"}
    for n in range(4)
]


def make_backlog(db: Path, events: int) -> None:
    conn = open_sync(db)
    apply_migrations(conn)
    conn.execute("BEGIN IMMEDIATE")
    at = utcnow()
    for n in range(events):
        data = {"sale_id": f"S-{n:07d}", "currency": "USD", "total": "43.16", "lines": LINES}
        append_event(conn, ORIGIN, "sale.recorded", data, at)
    conn.execute("COMMIT")
    conn.close()


async def start_hq(folder: Path, port: int) -> asyncio.subprocess.Process:
    cmd = [sys.executable, "-m", "edge", "hq", "--db", str(folder / "hq.sqlite3")]
    cmd += ["--broker-port", str(port), "--instance", "bench-hq", "--http", "off"]
    with (folder / "hq.log").open("ab") as log:
        return await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stdout=log, stderr=log)


async def drain(folder: Path, port: int, events: int, window: int) -> tuple[float, int]:
    settings = HqSettings.model_validate(
        {"broker": {"port": port}, "health_interval_s": 5, "window": window}
    )
    bus = EventBus()
    hq = await start_hq(folder, port)
    await hq_listening(port, folder)
    try:
        async with Ledger(folder / "ledger.sqlite3", bus, ORIGIN) as ledger:
            link = HqLink(
                settings,
                ledger=ledger,
                bus=bus,
                data_dir=folder,
                version="bench",
                journal_order=OrderJournal(ledger).record,
            )
            async with link:
                started = time.perf_counter()
                task = asyncio.create_task(link.run())
                done = asyncio.Event()
                await _until(lambda: link.relay.acked >= events, done)
                elapsed = time.perf_counter() - started
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            (pending,) = await ledger.read(
                lambda c: c.execute(
                    "SELECT count(*) FROM outbox WHERE state = 'pending'"
                ).fetchone()
            )
    finally:
        hq.terminate()
        await hq.wait()
    held = sqlite3.connect(folder / "hq.sqlite3").execute("SELECT count(*) FROM events").fetchone()
    assert pending == 0, f"{pending} events still pending"
    assert held[0] == events, f"HQ holds {held[0]} events, not {events}"
    return events / elapsed, link.relay.resent


async def _until(condition: Callable[[], bool], done: asyncio.Event) -> None:
    """Check `condition` every 50 ms (a benchmark's progress probe, not a test wait)."""
    while not condition():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.05):
                await done.wait()


async def hq_listening(port: int, folder: Path, timeout_s: float = 60.0) -> None:
    """Until the HQ service answers an order look-up: its events subscription (made in the
    same SUBSCRIBE as look-ups) is then in place, so no event is published to nobody.

    Presence is optional in the contract (v1.1), so it is not waited for.
    """
    topics = GatewayTopics(HqSettings().prefix, "bench-probe", "probe")
    answered = asyncio.Event()
    probe = MqttClient(
        BrokerSettings(port=port),
        "bench-probe",
        name="bench-probe",
        on_message=lambda _msg: answered.set(),
        subscriptions=[(topics.lookup_reply, 1)],
    )
    async with probe:
        task = asyncio.create_task(probe.run(), name="bench-probe")
        try:
            async with asyncio.timeout(timeout_s):
                await probe.wait_connected()
                while not answered.is_set():
                    body = {
                        "request_id": new_ulid(utcnow()),
                        "code": "PROBE-1",
                        "reply_to": topics.lookup_reply,
                    }
                    probe.publish(topics.lookup, dumps(body), qos=1)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await answered.wait()
        except TimeoutError:
            msg = f"the HQ service did not answer within {timeout_s:g} s; see {folder / 'hq.log'}"
            raise RuntimeError(msg) from None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


PATTERN_EVENTS = "bench/pattern/events"
PATTERN_ACKS = "bench/pattern/acks"
ACK_BODY = b'{"event_id":"01KB0000000000000000000000","status":"accepted","return_id":null}'


def paho_acker(port: int) -> None:
    """The HQ end of the paho-alone pattern (its own process): ack every event, nothing else."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-pattern-hq", protocol=paho.MQTTv5
    )
    client.max_inflight_messages_set(0)

    def on_connect(c: paho.Client, userdata: object, flags: object, rc: object, p: object) -> None:
        c.subscribe(PATTERN_EVENTS, qos=1)

    def on_subscribe(c: paho.Client, userdata: object, mid: int, rc: object, p: object) -> None:
        print("ready", flush=True)

    def on_message(c: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        c.publish(PATTERN_ACKS, ACK_BODY, qos=1)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_forever()


def paho_pattern(port: int, payload: bytes, count: int, window: int) -> float:
    """Events/s of the drain's MQTT pattern with paho alone (see the module's docstring)."""
    cmd = [sys.executable, "-m", "bench.bench_relay_drain", "--paho-acker", str(port)]
    acker = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    slots = threading.Semaphore(window)
    done = threading.Event()
    acked = 0

    def on_message(c: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        nonlocal acked
        acked += 1
        slots.release()
        if acked == count:
            done.set()

    subscribed = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-pattern-gw", protocol=paho.MQTTv5
    )
    client.max_inflight_messages_set(0)
    client.on_connect = lambda c, *_: c.subscribe(PATTERN_ACKS, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    try:
        assert acker.stdout is not None
        if acker.stdout.readline().strip() != "ready":  # its subscription is in place
            raise RuntimeError("the paho acker did not start")
        client.connect("127.0.0.1", port)
        client.loop_start()
        if not subscribed.wait(30):
            raise RuntimeError("no SUBACK for the acks of the paho pattern")
        started = time.perf_counter()
        for _ in range(count):
            slots.acquire()
            client.publish(PATTERN_EVENTS, payload, qos=1)
        done.wait(600)
        elapsed = time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()
        acker.terminate()
        acker.wait(30)
    return count / elapsed


def paho_baseline(port: int, payload: bytes, count: int, in_flight: int = 20) -> float:
    """Plain paho (its own network thread), at most `in_flight` unacknowledged publishes."""
    slots = threading.Semaphore(in_flight)
    done = threading.Event()
    acked = 0

    def on_publish(
        client: paho.Client, userdata: object, mid: int, rc: object, props: object
    ) -> None:
        nonlocal acked
        acked += 1
        slots.release()
        if acked == count:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(in_flight)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    for _ in range(count):
        slots.acquire()
        client.publish("bench/paho", payload, qos=1)
    done.wait(600)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return count / elapsed


@dataclass(frozen=True)
class Drain:
    rate: float  # end to end, events/s
    raw: float  # raw paho QoS 1, msg/s
    pattern: float  # the drain's MQTT pattern with paho alone, events/s
    resent: int
    payload_bytes: int


def measure(folder: Path, events: int, window: int) -> Drain:
    make_backlog(folder / "ledger.sqlite3", events)
    conn = open_sync(folder / "ledger.sqlite3")
    payload = conn.execute("SELECT envelope FROM outbox LIMIT 1").fetchone()[0].encode()
    conn.close()
    broker = Mosquitto(folder / "broker")
    broker.start()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rate, resent = runner.run(drain(folder, broker.port, events, window))
        raw = paho_baseline(broker.port, payload, events)
        pattern = paho_pattern(broker.port, payload, events, window)
    finally:
        broker.stop()
    return Drain(rate, raw, pattern, resent, len(payload))


def figures(
    quick: bool, folder: Path | None = None, events: int | None = None, window: int | None = None
) -> list[Figure]:
    events = events or (20_000 if quick else 100_000)
    window = window or HqSettings().window
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        m = measure(Path(tmp), events, window)
    raw = m.raw
    print(f"events: {events}, payload {m.payload_bytes} bytes, window {window}")
    print(f"raw paho QoS 1, 20 in flight (PUBACK only)   {raw:10,.0f} msg/s   1.00x")
    print(
        f"outbox drained end to end (HQ-acked, done)  {m.rate:10,.0f} events/s "
        f"{m.rate / raw:6.2f}x   ({m.resent} re-sent)"
    )
    print(
        f"same MQTT pattern, paho alone, no app       {m.pattern:10,.0f} events/s "
        f"{m.pattern / raw:6.2f}x",
        flush=True,
    )
    return [
        Figure(
            "relay_drain",
            f"{events:,}-event backlog drained end to end",
            m.rate,
            "/s",
            raw,
            "raw paho QoS 1, PUBACK only",
            Target("ratio", ">=", 0.5),
        ),
        Figure(
            "relay_drain",
            "the drain's MQTT pattern, paho alone",
            m.pattern,
            "/s",
            raw,
            "raw paho QoS 1, PUBACK only",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=None, help="default: the gateway's")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--paho-acker", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.paho_acker:
        paho_acker(args.paho_acker)
        return
    print_table(figures(False, args.dir, args.events, args.window))


if __name__ == "__main__":
    main()
