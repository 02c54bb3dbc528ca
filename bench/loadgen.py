"""Load from `wrk`, a C load generator, so the load costs the gateway's cores little.

A Python client on the same two cores would spend about as much CPU per request as the
gateway does, and the figures would measure the client as much as the gateway.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).with_name("refunds.lua")
HOW_TO_GET_WRK = (
    "this benchmark needs `wrk` (the HTTP load generator) and it is not on PATH.\n"
    "  Debian / Raspberry Pi OS:  sudo apt-get install wrk   (scripts/setup installs it)\n"
    "  elsewhere: build it from its sources, then run the benchmark again."
)


class MissingTool(RuntimeError):
    """A program the benchmark runs is not installed; the message says how to get it."""


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise MissingTool(HOW_TO_GET_WRK)
    return found


@dataclass(frozen=True)
class Load:
    clients: int
    rate: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int


def refund_load(
    base: str,
    token: str,
    *,
    clients: int,
    seconds: float,
    sales: int,
    tag: str,
    refund_to: str = "store_credit",
    threads: int = 1,
) -> Load:
    """`clients` keep-alive connections posting refunds for `seconds`; wrk's own latency
    distribution (it corrects for coordinated omission)."""
    threads = min(threads, clients)
    cmd = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"{base}/v1/refunds",
        "--",
        token,
        str(sales),
        str(threads),
        tag,
        refund_to,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    line = next(ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("{"))
    stats = json.loads(line)
    failed = int(stats["status_errors"]) + int(stats["socket_errors"])
    return Load(
        clients=clients,
        rate=stats["requests"] / (stats["duration_us"] / 1e6),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        requests=int(stats["requests"]),
        failed=failed,
    )
