"""A large fleet reporting to one HQ service: is its fleet page and `/metrics` current, and
what does each gateway cost it in memory?

Run: .venv/bin/python -m bench.bench_hq_fleet_scale [--gateways 10000] [--interval 30]
     [--seconds 75] [--workers 4]

`--gateways` simulated gateways (`bench/health_fleet.py`, in `--workers` processes) publish
a retained birth with a Will and then a retained health message every `--interval` s. The
reference HQ service runs as its own process with its HTTP server. While they report, this
process reads `/api/fleet` (what the page shows) every few seconds: for every health report
it finds, the lag is the time HQ applied it (`health_seen`) minus the time the gateway
stamped it (`health_at`); `/metrics` is scraped alike and must list every gateway.
Baselines from the same run: a plain paho subscriber's lag on the same health messages
(the broker's delivery), and the broker's own memory per gateway (it holds each one's
retained birth and health too).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.contract.timefmt import parse_iso

from .report import Figure, print_table
from .support import ROOT, Mosquitto, free_port, proc_usage

PREFIX = "retail/v1"


@dataclass(frozen=True)
class Scale:
    gateways: int
    sent: int
    lags_ms: list[float]
    broker_lags_ms: list[float]
    metrics_s: list[float]
    page_s: list[float]
    hq_mib: tuple[float, float]
    broker_mib: tuple[float, float]
    gateways_in_metrics: int


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


def raise_fd_limit() -> None:
    """One socket per simulated gateway, in the broker and the simulators."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def get(url: str, timeout: float = 30.0) -> tuple[bytes, float]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body, time.perf_counter() - started


def wait_http(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            get(url, 2)
        except OSError:
            threading.Event().wait(0.1)  # the service is still starting
        else:
            return
    raise RuntimeError(f"{url} did not answer")


def fleet_rows(body: bytes) -> list[dict[str, object]]:
    data = json.loads(body)
    rows = data["gateways"] if isinstance(data, dict) else data
    return [row for row in rows if isinstance(row, dict)]


class BrokerLag:
    """A plain paho subscriber to every health topic: the broker's own delivery lag."""

    def __init__(self, port: int) -> None:
        self.lags_ms: list[float] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-lag")
        self.client.on_connect = lambda c, *_: c.subscribe(f"{PREFIX}/+/+/health", qos=0)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        if msg.retain:  # stored before we subscribed: no lag to measure
            return
        at = json.loads(msg.payload)["at"]
        self.lags_ms.append(1000 * (time.time() - parse_iso(at).timestamp()))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def measure(folder: Path, gateways: int, interval: float, seconds: float, workers: int) -> Scale:
    raise_fd_limit()
    broker = Mosquitto(folder / "broker")
    broker.start()
    assert broker.proc is not None
    http_port = free_port()
    base = f"http://127.0.0.1:{http_port}"
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    cmd = [sys.executable, "-m", "edge", "hq", "--db", str(folder / "hq.sqlite3")]
    cmd += ["--broker-port", str(broker.port), "--instance", "bench-fleet-hq"]
    cmd += ["--http", f"127.0.0.1:{http_port}", "--stats-interval", "3600"]
    with (folder / "hq.log").open("ab") as log:
        hq = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env=env)
    sims: list[subprocess.Popen[str]] = []
    lag = BrokerLag(broker.port)
    try:
        wait_http(f"{base}/healthz")
        hq_before = proc_usage(hq.pid).rss_mib
        broker_before = proc_usage(broker.proc.pid).rss_mib
        share = -(-gateways // workers)
        for first in range(0, gateways, share):
            sim = [sys.executable, "-m", "bench.health_fleet", "--port", str(broker.port)]
            sim += ["--first", str(first), "--count", str(min(share, gateways - first))]
            sim += ["--interval", str(interval), "--seconds", str(seconds)]
            sims.append(subprocess.Popen(sim, cwd=ROOT, stdout=subprocess.PIPE, text=True))
        for proc in sims:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a simulator worker did not start")
        lag.lags_ms.clear()
        seen: dict[tuple[object, object], float] = {}
        metrics_s: list[float] = []
        page_s: list[float] = []
        in_metrics = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            body, took = get(f"{base}/api/fleet")
            page_s.append(took)
            for row in fleet_rows(body):
                at, applied = row.get("health_at"), row.get("health_seen")
                key = (row.get("store_id"), row.get("gateway_id"), at)
                if isinstance(at, str) and isinstance(applied, str) and key not in seen:
                    seen[key] = 1000 * (parse_iso(applied) - parse_iso(at)).total_seconds()
            text, took = get(f"{base}/metrics")
            metrics_s.append(took)
            in_metrics = text.count(b"edge_hq_gateway_online{")
            threading.Event().wait(min(2.0, max(0.0, end - time.monotonic())))
        sent = 0
        for proc in sims:
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            sent += int(line[1]) if line and line[0] == "done" else 0
        hq_after = proc_usage(hq.pid).rss_mib
        broker_after = proc_usage(broker.proc.pid).rss_mib
    finally:
        lag.close()
        for proc in sims:
            proc.kill()
            proc.wait(30)
        hq.send_signal(signal.SIGTERM)
        hq.wait(60)
        broker.stop()
    return Scale(
        gateways,
        sent,
        list(seen.values()),
        lag.lags_ms,
        metrics_s,
        page_s,
        (hq_before, hq_after),
        (broker_before, broker_after),
        in_metrics,
    )


def figures(
    quick: bool, folder: Path | None = None, args: argparse.Namespace | None = None
) -> list[Figure]:
    if args is None:
        args = argparse.Namespace(
            gateways=2000 if quick else 10_000,
            interval=5.0 if quick else 30.0,
            seconds=20.0 if quick else 75.0,
            workers=4,
        )
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        m = measure(Path(tmp), args.gateways, args.interval, args.seconds, args.workers)
    hq_kib = (m.hq_mib[1] - m.hq_mib[0]) * 1024 / m.gateways
    broker_kib = (m.broker_mib[1] - m.broker_mib[0]) * 1024 / m.gateways
    print(
        f"{m.gateways:,} gateways, health every {args.interval:g} s: {m.sent:,} reports sent, "
        f"{len(m.lags_ms):,} seen applied on /api/fleet; lag p50 "
        f"{statistics.median(m.lags_ms):.1f} ms p99 {p99(m.lags_ms):.1f} ms "
        f"(broker to a plain subscriber p99 {p99(m.broker_lags_ms):.1f} ms)"
    )
    print(
        f"/api/fleet p99 {1000 * p99(m.page_s):.0f} ms, /metrics p99 "
        f"{1000 * p99(m.metrics_s):.0f} ms, gateways in /metrics {m.gateways_in_metrics:,}; "
        f"memory per gateway: HQ {hq_kib:.1f} KiB, broker {broker_kib:.1f} KiB",
        flush=True,
    )
    return [
        Figure(
            "hq_fleet_scale",
            f"health lag p99 on the fleet page, {m.gateways:,} gateways",
            p99(m.lags_ms),
            "ms",
            p99(m.broker_lags_ms),
            "broker to a plain subscriber, p99",
        ),
        Figure(
            "hq_fleet_scale",
            f"gateways listed in /metrics, {m.gateways:,} reporting",
            m.gateways_in_metrics,
            "gateways",
            m.gateways,
            "gateways reporting",
        ),
        Figure(
            "hq_fleet_scale",
            "HQ memory per gateway",
            hq_kib,
            "KiB",
            broker_kib,
            "broker memory per gateway",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=75.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    print_table(figures(False, args.dir, args))


if __name__ == "__main__":
    main()
