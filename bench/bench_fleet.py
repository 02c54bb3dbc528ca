"""A fleet of simulated gateways against one broker, and `fleet` keeping up with it.

Run: .venv/bin/python -m bench.bench_fleet [--gateways 1000] [--interval 1] [--seconds 10]

This process simulates `--gateways` gateways, each with its own MQTT connection, Will,
retained birth and a retained health message (about 700 bytes) every `--interval` s, on one
mosquitto started on a free port. The fleet watcher (the code behind `edge-gateway fleet`)
runs as its own process. Reported: how long the watcher needs for a complete first view,
how far behind it reads health (publish time to applied), and, after a tenth of the
gateways are killed at once (connections dropped, no DISCONNECT), how long until it shows
every one of them offline through its Will.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from edge.contract.payloads import dumps
from edge.contract.timefmt import iso, parse_iso, utcnow
from edge.hq.fleet_watch import FleetWatcher
from edge.mqtt.client import Message, MqttClient, Will
from edge.mqtt.settings import BrokerSettings

from .report import Figure
from .support import ROOT, Mosquitto

PREFIX = "retail/v1"


class SimGateway:
    def __init__(self, port: int, n: int) -> None:
        self.base = f"{PREFIX}/{n // 10:04d}/gw-{n % 10:02d}"
        self.client = MqttClient(
            BrokerSettings(port=port, backoff_initial_s=0.5),
            f"sim-{n}",
            name=f"sim-{n}",
            on_message=lambda _m: None,
            prepare=self._will,
            on_connect=self._birth,
        )
        self.task: asyncio.Task[None] | None = None

    async def _will(self) -> Will:
        return Will(f"{self.base}/state", dumps({"state": "offline", "bd_seq": 1}))

    async def _birth(self) -> None:
        body = {"state": "online", "bd_seq": 1, "version": "sim", "started_at": iso(utcnow())}
        self.client.publish(f"{self.base}/state", dumps(body), qos=1, retain=True)

    def health(self, n: int) -> None:
        body = {
            "at": iso(utcnow()),
            "version": "sim",
            "link": {"state": "online", "protocol": "5"},
            "outbox": {"pending": n % 7, "oldest_pending_age_s": None, "last_seq": 1000 + n},
            "last_hq_ack_at": iso(utcnow()),
            "refunds_today": n % 50,
            "devices": {"scanner-1": {"kind": "keyboard", "state": "connected", "lane": "1"}},
            "disk_free_bytes": 12_345_678_901,
            "db_bytes": 4_567_890,
            "errors": {},
            "alerts_open": [],
        }
        with contextlib.suppress(Exception):
            self.client.publish(f"{self.base}/health", dumps(body), qos=0, retain=True)


async def watch(port: int, gateways: int, seconds: float, kill: int) -> dict[str, Any]:
    """The watcher process: first view, health lag, Will detection."""
    watcher = FleetWatcher(BrokerSettings(port=port), PREFIX, "bench-fleet")
    lags: list[float] = []
    offline_at: list[float] = []
    all_offline = asyncio.Event()
    original = watcher.view.apply

    def apply(msg: Message, now: float | None = None) -> Any:
        addr = original(msg, now)
        seen = time.time()
        if addr.leaf == "health":
            lags.append(seen - parse_iso(json.loads(msg.payload)["at"]).timestamp())
        elif addr.leaf == "state" and b'"offline"' in msg.payload:
            offline_at.append(seen)
            if len(offline_at) >= kill:
                all_offline.set()
        return addr

    watcher.view.apply = apply  # type: ignore[method-assign]
    started = time.perf_counter()
    async with watcher.client, asyncio.TaskGroup() as tg:
        task = tg.create_task(watcher.run())
        await watcher.synced.wait()
        synced_s = time.perf_counter() - started
        seen_at_sync = len(watcher.view)
        print("synced", flush=True)
        lags.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds + 30):
                await all_offline.wait()
        task.cancel()
    return {
        "synced_s": synced_s,
        "seen_at_sync": seen_at_sync,
        "health_applied": len(lags),
        "lag_p50_ms": 1000 * statistics.median(lags) if lags else None,
        "lag_p99_ms": 1000 * statistics.quantiles(lags, n=100)[98] if len(lags) > 100 else None,
        "offline_seen": len(offline_at),
        "last_offline_at": max(offline_at) if offline_at else None,
        "gateways": gateways,
    }


async def simulate(port: int, gateways: int, interval: float, seconds: float) -> tuple[int, int]:
    """Prints the fleet's figures; returns (health messages sent, applied by `fleet`)."""
    sims = [SimGateway(port, n) for n in range(gateways)]
    began = time.perf_counter()
    for sim in sims:
        sim.task = asyncio.create_task(sim.client.run())
    for sim in sims:
        await sim.client.wait_connected()
    connected_s = time.perf_counter() - began
    kill = max(1, gateways // 10)
    cmd = [sys.executable, "-m", "bench.bench_fleet", "--watch", "--port", str(port)]
    cmd += ["--gateways", str(gateways), "--seconds", str(seconds), "--kill", str(kill)]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    await proc.stdout.readline()  # "synced"
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        tick = time.perf_counter()
        for sim in sims:
            sim.health(n)
        n += 1
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - tick)))
    killed_at = time.time()
    await asyncio.gather(*(sim.client.abort() for sim in sims[:kill]))
    result = json.loads((await proc.stdout.read()).decode().strip().splitlines()[-1])
    await proc.wait()
    for sim in sims:
        if sim.task is not None:
            sim.task.cancel()
    await asyncio.gather(*(s.task for s in sims if s.task), return_exceptions=True)
    await asyncio.gather(*(sim.client.close() for sim in sims[kill:]))
    sent = n * gateways
    will_s = (result["last_offline_at"] or killed_at) - killed_at
    print(f"{gateways} gateways on one broker, health every {interval:g} s for {seconds:g} s")
    print(f"  gateways connected (births retained)     {connected_s:8.2f} s")
    print(f"  fleet's first complete view             {result['synced_s']:8.2f} s"
          f"  ({result['seen_at_sync']} of {gateways} gateways)")  # fmt: skip
    print(f"  health published / applied by fleet     {sent:8d} / {result['health_applied']}"
          f"  ({result['health_applied'] / max(1, sent):.0%})")  # fmt: skip
    p99 = result["lag_p99_ms"]  # None below 100 samples: too few for a 99th percentile
    print(f"  fleet lag behind health p50 / p99       {result['lag_p50_ms'] or 0:8.1f} / "
          f"{'-' if p99 is None else f'{p99:.1f}'} ms")  # fmt: skip
    print(f"  {kill} killed at once: all offline in fleet {will_s:8.2f} s"
          f"  ({result['offline_seen']} of {kill} Wills seen)")  # fmt: skip
    return sent, int(result["health_applied"])


def figures(quick: bool, gateways: int | None = None, seconds: float | None = None) -> list[Figure]:
    gateways = gateways or (200 if quick else 1000)
    seconds = seconds or (3.0 if quick else 10.0)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        broker = Mosquitto(Path(tmp))
        broker.start()
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                sent, applied = runner.run(simulate(broker.port, gateways, 1.0, seconds))
        finally:
            broker.stop()
    return [
        Figure(
            "fleet",
            f"health shown by `fleet`, {gateways:,} gateways",
            applied,
            "msgs",
            sent,
            "health published",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--watch", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--kill", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        if args.watch:
            result = runner.run(watch(args.port, args.gateways, args.seconds, args.kill))
            print(json.dumps(result), flush=True)
            return
        broker = Mosquitto(Path(tempfile.mkdtemp(prefix="bench-fleet-")))
        broker.start()
        try:
            runner.run(simulate(broker.port, args.gateways, args.interval, args.seconds))
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
