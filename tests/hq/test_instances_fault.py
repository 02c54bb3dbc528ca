"""Three HQ service processes on one PostgreSQL, a real mosquitto, fifty simulated gateways,
and SIGKILLs of HQ instances while they drain.

The gateways follow the public contract only: a gapless `seq`, every event published with
QoS 1 in seq order, and sent again (same `event_id`) after an ack timeout until HQ acks it;
a refund's event is also sent again until its outcome comes (a duplicate is acked with it).
Whatever instance dies mid-batch or mid-settlement, HQ must end up holding every event
once, every refund decided once, and every gateway's seq gapless.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from edge.contract.timefmt import utcnow
from edge.domain.ids import new_ulid
from edge.hq import store as hq_store
from edge.hq.store import HqStore
from edge.hq.tables import events, refunds
from tests.core.daemon import ROOT
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import PREFIX, Observer

GATEWAYS = 50
EVENTS = 40  # per gateway
REFUND_EVERY = 4  # every 4th event is a refund request: 500 refunds
DECLINED_EVERY = 5  # every 5th refund is a card refund over the simulated limit
INSTANCES = 3
KILLS = 4
SETTLE_WORKERS = 4
LEASE_S = 3.0
ACK_TIMEOUT_S = 2.0
WINDOW = 10  # events a gateway has in flight
WAIT_S = 45.0


class Progress:
    """Acked events over all gateways, for the test to wait on."""

    def __init__(self) -> None:
        self.acked = 0
        self.changed = asyncio.Event()

    def add(self) -> None:
        self.acked += 1
        self.changed.set()

    async def reached(self, count: int) -> None:
        while self.acked < count:
            self.changed.clear()
            await self.changed.wait()


class SimGateway:
    """One gateway's HQ link as the contract describes it, on its own paho client."""

    def __init__(self, n: int, port: int, progress: Progress) -> None:
        self.store_id = f"{n // 10 + 1:04d}"  # five stores of ten gateways
        self.gateway_id = f"gw-{n:02d}"
        self.base = f"{PREFIX}/{self.store_id}/{self.gateway_id}"
        self.port = port
        self.progress = progress
        self.envelopes = [self._envelope(seq) for seq in range(1, EVENTS + 1)]
        self.refund_events = {
            env["data"]["return_id"]: env["event_id"]
            for env in self.envelopes
            if env["type"] == "refund.requested"
        }
        self.acks: dict[str, list[dict[str, Any]]] = {}
        self.outcomes: dict[str, list[dict[str, Any]]] = {}
        self.sent = 0
        self.resent = 0
        self.changed = asyncio.Event()
        self._subscribed: asyncio.Future[None] | None = None
        self._aio_loop: asyncio.AbstractEventLoop | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sim-{self.store_id}-{self.gateway_id}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _envelope(self, seq: int) -> dict[str, Any]:
        data: dict[str, Any] = {}
        kind = "sale.recorded"
        if seq % REFUND_EVERY == 0:
            kind = "refund.requested"
            n = seq // REFUND_EVERY
            total = Decimal("900.00") if n % DECLINED_EVERY == 0 else Decimal("12.50")
            data = {
                "return_id": f"R-{self.store_id}-{self.gateway_id}-{seq:03d}",
                "currency": "USD",
                "total": str(total),
                "tenders": [{"type": "card", "amount": str(total), "payment_token": "tok_1"}],
            }
        return {
            "event_id": new_ulid(utcnow()),
            "type": kind,
            "schema": 1,
            "store_id": self.store_id,
            "gateway_id": self.gateway_id,
            "seq": seq,
            "occurred_at": "2026-11-22T10:15:00Z",
            "data": data,
        }

    # paho's thread: hand everything to the loop

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(f"{self.base}/acks", qos=1)

    def _on_subscribe(self, *_: Any) -> None:
        assert self._aio_loop is not None
        self._aio_loop.call_soon_threadsafe(self._subscribed_now)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        assert self._aio_loop is not None
        self._aio_loop.call_soon_threadsafe(self._ack, json.loads(msg.payload))

    # the loop

    def _subscribed_now(self) -> None:
        if self._subscribed is not None and not self._subscribed.done():
            self._subscribed.set_result(None)

    def _ack(self, ack: dict[str, Any]) -> None:
        if ack["event_id"] not in self.acks:
            self.acks[ack["event_id"]] = []
            self.progress.add()
        self.acks[ack["event_id"]].append(ack)
        if ack["status"] in ("settled", "declined"):
            self.outcomes.setdefault(ack["return_id"], []).append(ack)
        self.changed.set()

    async def connect(self) -> None:
        self._aio_loop = asyncio.get_running_loop()
        self._subscribed = self._aio_loop.create_future()
        await asyncio.to_thread(self.client.connect, "127.0.0.1", self.port)
        self.client.loop_start()
        await self._subscribed

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _publish(self, env: dict[str, Any]) -> None:
        self.client.publish(f"{self.base}/events", json.dumps(env).encode(), qos=1)
        self.sent += 1

    def done(self) -> bool:
        return len(self.acks) == EVENTS and len(self.outcomes) == len(self.refund_events)

    async def run(self) -> None:
        """Send in seq order within the window; re-send whatever is overdue."""
        loop = asyncio.get_running_loop()
        due: dict[int, float] = {}  # index into envelopes -> when to send it again
        next_index = 0
        while not self.done():
            now = loop.time()
            in_flight = [i for i in due if self.envelopes[i]["event_id"] not in self.acks]
            while next_index < EVENTS and len(in_flight) < WINDOW:
                self._publish(self.envelopes[next_index])
                due[next_index] = now + ACK_TIMEOUT_S
                in_flight.append(next_index)
                next_index += 1
            for i in sorted(due):
                env = self.envelopes[i]
                waiting = env["event_id"] not in self.acks or (
                    env["type"] == "refund.requested"
                    and env["data"]["return_id"] not in self.outcomes
                )
                if not waiting:
                    del due[i]
                elif due[i] <= now:
                    self._publish(env)
                    self.resent += 1
                    due[i] = now + ACK_TIMEOUT_S
            self.changed.clear()
            timeout = min(due.values(), default=loop.time() + ACK_TIMEOUT_S) - loop.time()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.01, timeout))
            except TimeoutError:
                continue


class HqProcess:
    """`edge-gateway hq run` on the shared PostgreSQL, killable and restartable."""

    def __init__(self, name: str, db_url: str, broker_port: int, workdir: Path) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        self.cmd = [
            sys.executable, "-m", "edge", "hq",
            "--broker-port", str(broker_port),
            "--instance", name,
            "--settle-workers", str(SETTLE_WORKERS),
            "--delay-s", "0.02",
            "--stats-interval", "600",
            "run", "--db", db_url, "--claim-lease", str(LEASE_S), "--http", "off",
        ]  # fmt: skip
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        self.env.update(
            EDGE_DATA_DIR=str(workdir),
            EDGE_HQ__BROKER__BACKOFF_INITIAL_S="0.05",
            EDGE_HQ__BROKER__BACKOFF_MAX_S="0.3",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=sink, stderr=sink, cwd=ROOT)
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            return proc.wait(30)
        return proc.returncode


async def test_three_instances_killed_at_random_hold_everything_once(
    tmp_path: Path, pg_url: str
) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    print(f"seed {seed}")
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    hqs = [HqProcess(f"hq-{n}", pg_url, broker.port, tmp_path) for n in range(INSTANCES)]
    progress = Progress()
    gateways = [SimGateway(n, broker.port, progress) for n in range(GATEWAYS)]
    presence = f"{PREFIX}/_hq/presence"
    drain: asyncio.Future[list[None]] | None = None
    try:
        async with Observer(broker.port, [f"{presence}/+"]) as observer:
            for hq in hqs:  # all at once: they migrate the empty database in turn
                hq.start()
            await observer.wait_for(lambda: all(observer.births[h.name] for h in hqs), WAIT_S)
            await asyncio.gather(*(gw.connect() for gw in gateways))
            drain = asyncio.gather(*(gw.run() for gw in gateways))
            total = GATEWAYS * EVENTS
            killed: Counter[str] = Counter()
            for at in sorted(rng.uniform(0.1, 0.8) for _ in range(KILLS)):
                async with asyncio.timeout(WAIT_S):
                    await progress.reached(int(at * total))
                victim = rng.choice(hqs)
                victim.kill()
                killed[victim.name] += 1
                victim.start()
            async with asyncio.timeout(WAIT_S):
                await drain

            def online(name: str) -> bool:
                latest = observer.latest(f"{presence}/{name}")
                return latest is not None and latest["state"] == "online"

            await observer.wait_for(lambda: all(online(h.name) for h in hqs), WAIT_S)
            assert all(h.proc is not None and h.proc.poll() is None for h in hqs)
            assert sum(killed.values()) == KILLS
    finally:
        if drain is not None:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
        for gw in gateways:
            gw.close()
        codes = [hq.stop() for hq in hqs]
        broker.stop()
    assert codes == [0] * INSTANCES  # every instance, restarted ones too, stops cleanly
    await check_store(pg_url, gateways)


async def check_store(db_url: str, gateways: list[SimGateway]) -> None:
    """What HQ holds: each event once, each refund decided once, no gap anywhere."""
    sent = {env["event_id"]: env for gw in gateways for env in gw.envelopes}
    async with HqStore(db_url) as hq:

        async def held_events(conn: AsyncConnection) -> list[Any]:
            query = select(events.c.event_id, events.c.store_id, events.c.gateway_id, events.c.seq)
            return list((await conn.execute(query)).all())

        async def held_refunds(conn: AsyncConnection) -> list[Any]:
            return list((await conn.execute(select(refunds))).mappings().all())

        rows = await hq.read(held_events)
        streams = await hq.read(hq_store.stream_report)
        decided = await hq.read(held_refunds)
    assert len(rows) == len(sent) == GATEWAYS * EVENTS
    for event_id, store_id, gateway_id, seq in rows:
        env = sent[event_id]
        assert (store_id, gateway_id, seq) == (env["store_id"], env["gateway_id"], env["seq"])

    assert len(streams) == GATEWAYS
    for s in streams:
        assert (s["contiguous_through"], s["high_seq"], s["received"]) == (EVENTS, EVENTS, EVENTS)
        assert (s["gap"], s["gap_since"]) == (None, None)

    expected = {rid: gw for gw in gateways for rid in gw.refund_events}
    assert {r["return_id"] for r in decided} == set(expected)
    for r in decided:
        over_limit = Decimal(r["total"]) > Decimal("500.00")
        assert r["status"] == ("declined" if over_limit else "settled")
        assert r["decided_by"] is not None
        assert r["decided_at"] is not None
        assert r["claims"] >= 1
        outcomes = expected[r["return_id"]].outcomes[r["return_id"]]
        assert {(o["status"], o["processor_ref"], o["erp_ref"]) for o in outcomes} == {
            (r["status"], r["processor_ref"], r["erp_ref"])
        }  # every outcome a gateway heard is the one recorded
    # a processor call is repeated only for a refund an instance was settling when it was
    # killed (its lease passes on); the processor's idempotency key makes that harmless
    repeated = [r["return_id"] for r in decided if r["claims"] > 1]
    print(f"processor calls {sum(r['claims'] for r in decided)} for {len(decided)} refunds")
    assert len(repeated) <= KILLS * SETTLE_WORKERS * 3, repeated
    resent = sum(gw.resent for gw in gateways)
    assert resent > 0  # the kills did cost deliveries, which the gateways made good
