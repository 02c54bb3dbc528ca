"""Simulated gateways that come back from a WAN outage with a backlog and drain it as the
gateway's relay does (`edge/hqlink/relay.py`): events in `seq` order at QoS 1, at most
`window` unacked at a time, each sent again after `ack_timeout_s` until HQ's ack names its
`event_id`, but only while HQ acks nothing or has acked events sent after it that long ago
(an event HQ has not reached yet is queued, not lost). `--naive` re-sends every event whose
`ack_timeout_s` passed, for comparison.

The simulation runs in worker processes (`python -m bench.backlog_fleet ...`), a share of
the gateways each with one paho client per gateway, so the simulator is not what limits HQ.
A worker prints `ready` once every client is subscribed to its acks, waits for `go` on
stdin, and prints `done <monotonic seconds> <events re-sent>` when all its events are acked
(CLOCK_MONOTONIC is one clock for every process on the machine).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.contract.timefmt import iso, utcnow
from edge.contract.topics import GatewayTopics
from edge.domain.ids import new_ulid

MARK_EVERY_S = 0.5

LINES = [
    {"line_id": str(n), "sku": f"SKU-{n:04d}", "quantity": 1, "unit_price": "9.99", "tax": "0.80"}
    for n in range(4)
]


def backlog(store_id: str, gateway_id: str, events: int) -> list[tuple[str, bytes]]:
    """`events` sale.recorded envelopes (about 600 bytes each) with seq 1..events."""
    now = utcnow()
    at = iso(now)
    out: list[tuple[str, bytes]] = []
    for seq in range(1, events + 1):
        event_id = new_ulid(now)
        data = {"sale_id": f"S-{seq:07d}", "currency": "USD", "total": "43.16", "lines": LINES}
        envelope = {
            "event_id": event_id,
            "type": "sale.recorded",
            "schema": 1,
            "store_id": store_id,
            "gateway_id": gateway_id,
            "seq": seq,
            "occurred_at": at,
            "data": data,
        }
        out.append((event_id, orjson.dumps(envelope)))
    return out


@dataclass
class SimGateway:
    """One gateway's drain: the next event to send, and what is in flight since when."""

    topics: GatewayTopics
    events: list[tuple[str, bytes]]
    window: int
    next_index: int = 0
    naive: bool = False
    # event id -> (index, sent at, send number), in send order (a re-send goes to the back)
    in_flight: dict[str, tuple[int, float, int]] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    resent: int = 0
    sends: int = 0
    acked_order: int = 0
    last_ack: float | None = None
    marks: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def done(self) -> bool:
        return len(self.acked) == len(self.events)

    def fill(self, client: paho.Client) -> None:
        with self.lock:
            while len(self.in_flight) < self.window and self.next_index < len(self.events):
                event_id, payload = self.events[self.next_index]
                self.sends += 1
                self.in_flight[event_id] = (self.next_index, time.monotonic(), self.sends)
                self.next_index += 1
                client.publish(self.topics.events, payload, qos=1)

    def acked_one(self, event_id: str) -> bool:
        with self.lock:
            flight = self.in_flight.pop(event_id, None)
            if flight is None:
                return False
            now = time.monotonic()
            self.last_ack = now
            self.acked_order = max(self.acked_order, flight[2])
            if not self.marks or now - self.marks[-1][0] >= MARK_EVERY_S:
                self.marks.append((now, self.acked_order))
            self.acked.add(event_id)
            return True

    def resend_overdue(self, client: paho.Client, ack_timeout_s: float) -> None:
        now = time.monotonic()
        due = now - ack_timeout_s
        with self.lock:
            silent = self.naive or self.last_ack is None or self.last_ack <= due
            passed_over = max((v for at, v in self.marks if at <= due), default=0)
            for event_id, (index, sent, order) in list(self.in_flight.items()):
                if sent > due or (not silent and order >= passed_over):
                    break
                del self.in_flight[event_id]
                self.sends += 1
                self.in_flight[event_id] = (index, now, self.sends)
                self.resent += 1
                client.publish(self.topics.events, self.events[index][1], qos=1)


def run_worker(
    port: int,
    prefix: str,
    stores: list[str],
    events: int,
    window: int,
    ack_timeout_s: float,
    naive: bool = False,
) -> None:
    gateways: list[tuple[SimGateway, paho.Client]] = []
    subscribed = threading.Semaphore(0)
    all_done = threading.Event()
    remaining = [len(stores)]
    guard = threading.Lock()
    started = threading.Event()
    for store in stores:
        topics = GatewayTopics(prefix, store, "gw-01")
        gateway = SimGateway(topics, backlog(store, "gw-01", events), window, naive=naive)
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sim-{store}", protocol=paho.MQTTv311
        )
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)

        def on_connect(c: paho.Client, _u: object, _f: object, _rc: object, _p: object) -> None:
            c.subscribe(c.user_data_get().topics.acks, qos=1)

        def on_subscribe(c: paho.Client, _u: object, _m: int, _rc: object, _p: object) -> None:
            subscribed.release()
            if started.is_set():  # a reconnect: carry on with what is in flight
                c.user_data_get().fill(c)

        def on_message(c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
            gw: SimGateway = c.user_data_get()
            try:
                event_id = orjson.loads(msg.payload)["event_id"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                return
            was_open = not gw.done
            if gw.acked_one(event_id):
                gw.fill(c)
                if was_open and gw.done:
                    with guard:
                        remaining[0] -= 1
                        if remaining[0] == 0:
                            all_done.set()

        client.user_data_set(gateway)
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        gateways.append((gateway, client))
    for _ in stores:
        if not subscribed.acquire(timeout=60):
            raise RuntimeError("a simulated gateway got no SUBACK for its acks")
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    started.set()
    for gateway, client in gateways:
        gateway.fill(client)
    while not all_done.wait(1.0):
        for gateway, client in gateways:
            gateway.resend_overdue(client, ack_timeout_s)
    finished = time.monotonic()
    print(f"done {finished:.6f} {sum(g.resent for g, _ in gateways)}", flush=True)
    for _, client in gateways:
        client.disconnect()
        client.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default="retail/v1")
    parser.add_argument("--stores", required=True, help="comma-separated store ids")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--ack-timeout", type=float, default=10.0)
    parser.add_argument("--naive", action="store_true", help="re-send on every timeout")
    args = parser.parse_args()
    stores = args.stores.split(",")
    run_worker(
        args.port, args.prefix, stores, args.events, args.window, args.ack_timeout, args.naive
    )


if __name__ == "__main__":
    main()
