"""What an idle gateway costs: resident memory and CPU with no devices configured.

Run: .venv/bin/python -m bench.bench_idle [--seconds 20]

The gateway runs as in a store without scanners: LAN API up, HQ link connected to a local
mosquitto (health, keepalives), no devices. After it is ready and has settled, its resident
set (VmRSS) is read and its CPU time is counted over `--seconds`. The baseline, in the same
run: a bare Python process that imports aiohttp, paho-mqtt and pydantic (and defines one
model, which loads pydantic's core) and waits.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .report import Figure, Target, print_table
from .support import Mosquitto, ProcUsage, proc_usage, running_gateway

SETTLE_S = 3.0
BARE = (
    "import signal, aiohttp, aiohttp.web, paho.mqtt.client, pydantic\n"
    "class Model(pydantic.BaseModel):\n"  # pydantic loads its core on first use
    "    x: int\n"
    "print('ready', flush=True)\n"
    "signal.pause()\n"
)


def idle(pid: int, seconds: float) -> tuple[ProcUsage, float]:
    """(usage after `seconds`, CPU percent of one core over them)."""
    time.sleep(SETTLE_S)  # a benchmark's settling time: start-up work is not idle cost
    before = proc_usage(pid)
    time.sleep(seconds)
    after = proc_usage(pid)
    return after, (after.cpu_s - before.cpu_s) / seconds * 100


def bare(seconds: float) -> tuple[ProcUsage, float]:
    proc = subprocess.Popen([sys.executable, "-c", BARE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        return idle(proc.pid, seconds)
    finally:
        proc.terminate()
        proc.wait(30)


def figures(quick: bool, folder: Path | None = None, seconds: float | None = None) -> list[Figure]:
    seconds = seconds or (5.0 if quick else 20.0)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        broker = Mosquitto(Path(tmp) / "broker")
        broker.start()
        try:
            port = str(broker.port)
            with running_gateway(
                Path(tmp), EDGE_HQ__ENABLED="true", EDGE_HQ__BROKER__PORT=port
            ) as gw:
                usage, cpu = idle(gw.pid, seconds)
        finally:
            broker.stop()
    base, base_cpu = bare(seconds)
    print(
        f"idle gateway (no devices, HQ link up): RSS {usage.rss_mib:.1f} MiB, CPU {cpu:.2f}%;"
        f" bare aiohttp+paho+pydantic process: RSS {base.rss_mib:.1f} MiB, CPU {base_cpu:.2f}%",
        flush=True,
    )
    return [
        Figure(
            "idle",
            "idle RSS, no devices",
            usage.rss_mib,
            "MiB",
            base.rss_mib,
            "bare aiohttp+paho+pydantic",
            Target("value", "<=", 55),
        ),
        Figure(
            "idle",
            f"idle CPU over {seconds:g} s",
            cpu,
            "%",
            base_cpu,
            "bare aiohttp+paho+pydantic",
            Target("value", "<=", 0.5),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print_table(figures(False, None, args.seconds))


if __name__ == "__main__":
    main()
