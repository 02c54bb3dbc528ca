"""Regional-outage recovery: a fleet of gateways reconnects at once, each with a backlog, and
HQ (1, 2 and 4 instances of the reference HQ service on one PostgreSQL) takes it all in.

Run: .venv/bin/python -m bench.bench_hq_recovery [--gateways 100] [--events 2000]
     [--instances 1,2,4] [--workers 4]

For each instance count: a fresh mosquitto and database, the HQ instances as their own
processes (MQTT 5 shared subscriptions spread the events), then `--gateways` simulated
gateways (`bench/backlog_fleet.py`, in `--workers` processes) release their backlogs at
the same moment. The clock runs until the last event is HQ-acked (HQ acks only after its
database commit). Reported: events/s, time to the last ack, and CPU-seconds per 1,000
events per HQ instance (what predicts the instances a bigger fleet needs; this machine's
cores are shared by the broker, PostgreSQL, the simulator and every instance).
Baselines from the same run: raw QoS 1 throughput of the same broker (the same number of
publishers, same payload, PUBACK only), and the broker's own CPU per 1,000 events.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.contract.topics import hq_presence_filter

from .backlog_fleet import backlog
from .bench_relay_drain import paho_baseline
from .postgres import Postgres
from .report import Figure, print_table
from .support import ROOT, Mosquitto, proc_usage

PREFIX = "retail/v1"


@dataclass(frozen=True)
class Recovery:
    instances: int
    events: int
    seconds: float
    resent: int
    hq_cpu_s: list[float]
    broker_cpu_s: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_per_1000(self) -> float:
        """CPU-seconds an instance spends per 1,000 events it takes in: the instances share
        the events, so this is all their CPU over all the events."""
        return sum(self.hq_cpu_s) / (self.events / 1000)


def start_instances(
    folder: Path, port: int, db_url: str, count: int
) -> list[subprocess.Popen[bytes]]:
    procs = []
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    for n in range(count):
        cmd = [sys.executable, "-m", "edge", "hq", "--db", db_url]
        cmd += ["--broker-port", str(port), "--instance", f"bench-hq-{n}", "--http", "off"]
        cmd += ["--stats-interval", "3600"]
        log = (folder / f"hq-{n}.log").open("ab")
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env=env))
    return procs


def wait_for_presence(port: int, count: int, timeout_s: float = 60.0) -> None:
    """Until `count` HQ instances announce themselves online (each is subscribed by then)."""
    online: set[str] = set()
    enough = threading.Event()

    def on_message(c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        if b'"online"' in msg.payload:
            online.add(msg.topic)
        else:
            online.discard(msg.topic)
        if len(online) >= count:
            enough.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-presence-watch")
    client.on_connect = lambda c, *_: c.subscribe(hq_presence_filter(PREFIX), qos=1)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not enough.wait(timeout_s):
            raise RuntimeError(f"only {len(online)} of {count} HQ instances came online")
    finally:
        client.disconnect()
        client.loop_stop()


def run_fleet(port: int, gateways: int, events: int, workers: int) -> tuple[float, float, int]:
    """Start the simulated fleet; returns (start, last ack, events re-sent) in monotonic s."""
    stores = [f"{n:04d}" for n in range(1, gateways + 1)]
    shares = [stores[i::workers] for i in range(workers) if stores[i::workers]]
    procs = []
    for share in shares:
        cmd = [sys.executable, "-m", "bench.backlog_fleet", "--port", str(port)]
        cmd += ["--stores", ",".join(share), "--events", str(events)]
        procs.append(
            subprocess.Popen(
                cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        )
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a simulator worker did not start")
        started = time.monotonic()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        finished, resent = 0.0, 0
        for proc in procs:
            assert proc.stdout is not None
            word, at, again = proc.stdout.readline().split()
            if word != "done":
                raise RuntimeError("a simulator worker failed")
            finished, resent = max(finished, float(at)), resent + int(again)
    finally:
        for proc in procs:
            proc.wait(60)
    return started, finished, resent


def recover(folder: Path, pg: Postgres, instances: int, args: argparse.Namespace) -> Recovery:
    broker = Mosquitto(folder / f"broker-{instances}")
    broker.start()
    assert broker.proc is not None
    db_url = pg.create_database(f"hq_{instances}")
    procs = start_instances(folder, broker.port, db_url, instances)
    try:
        wait_for_presence(broker.port, instances)
        cpu_before = [proc_usage(p.pid).cpu_s for p in procs]
        broker_before = proc_usage(broker.proc.pid).cpu_s
        started, finished, resent = run_fleet(broker.port, args.gateways, args.events, args.workers)
        cpu = [proc_usage(p.pid).cpu_s - b for p, b in zip(procs, cpu_before, strict=True)]
        broker_cpu = proc_usage(broker.proc.pid).cpu_s - broker_before
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
        broker.stop()
    total = args.gateways * args.events
    return Recovery(instances, total, finished - started, resent, cpu, broker_cpu)


def _publisher(port: int, payload: bytes, count: int) -> float:
    return paho_baseline(port, payload, count)


def raw_qos1(folder: Path, publishers: int, total: int) -> float:
    """Aggregate QoS 1 msg/s of `publishers` plain paho clients on a fresh broker."""
    payload = backlog("0001", "gw-01", 1)[0][1]
    broker = Mosquitto(folder / "broker-raw")
    broker.start()
    try:
        started = time.perf_counter()
        with get_context("fork").Pool(publishers) as pool:
            pool.starmap(_publisher, [(broker.port, payload, total // publishers)] * publishers)
        elapsed = time.perf_counter() - started
    finally:
        broker.stop()
    return (total // publishers) * publishers / elapsed


def figures(
    quick: bool, folder: Path | None = None, args: argparse.Namespace | None = None
) -> list[Figure]:
    if args is None:
        args = argparse.Namespace(
            gateways=20 if quick else 100,
            events=500 if quick else 2000,
            instances="1,2" if quick else "1,2,4",
            workers=4,
        )
    counts = [int(n) for n in str(args.instances).split(",")]
    runs: list[Recovery] = []
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        root = Path(tmp)
        raw = raw_qos1(root, args.workers, min(args.gateways * args.events, 100_000))
        pg = Postgres(root / "pg")
        pg.start()
        try:
            for count in counts:
                run = recover(root, pg, count, args)
                runs.append(run)
                print(
                    f"{count} HQ instance(s): {run.events:,} events from {args.gateways} "
                    f"gateways acked in {run.seconds:.1f} s = {run.rate:,.0f} events/s "
                    f"({run.resent} re-sent); HQ CPU {run.cpu_per_1000:.3f} s per 1,000 "
                    f"events per instance; broker {run.broker_cpu_s / run.events * 1000:.3f}",
                    flush=True,
                )
        finally:
            pg.stop()
    print(f"raw QoS 1, {args.workers} publishers, PUBACK only: {raw:,.0f} msg/s", flush=True)
    out: list[Figure] = []
    for run in runs:
        out.append(
            Figure(
                "hq_recovery",
                f"{args.gateways} gateways x {args.events:,} events, {run.instances} HQ",
                run.rate,
                "/s",
                raw,
                f"raw QoS 1, {args.workers} publishers",
            )
        )
        out.append(
            Figure(
                "hq_recovery",
                f"HQ CPU per 1,000 events per instance, {run.instances} HQ",
                run.cpu_per_1000 * 1000,
                "ms",
                run.broker_cpu_s / run.events * 1_000_000,
                "broker CPU per 1,000 events",
            )
        )
    if len(runs) > 1:
        for run in runs[1:]:
            out.append(
                Figure(
                    "hq_recovery",
                    f"speed-up with {run.instances} HQ instances",
                    run.rate,
                    "/s",
                    runs[0].rate,
                    "1 HQ instance, same run",
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=100)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--instances", default="1,2,4")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    print_table(figures(False, args.dir, args))


if __name__ == "__main__":
    main()
