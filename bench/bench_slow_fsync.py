"""Group commit where fsync is slow, as on a Raspberry Pi's SD card.

Run: .venv/bin/python -m bench.bench_slow_fsync [--seconds 5] [--delay-ms 5] [--dir PATH]

bench/slow_fsync.c is built with the system C compiler into a temporary folder and
preloaded (LD_PRELOAD) into the gateway process alone: each of its fsync and fdatasync calls
waits `--delay-ms` first. Refunds come from `wrk` at 64 clients, as in bench_refunds. In the
same run: the same gateway and load without the delay (the baseline), and the naive rate
under the same delay, stdlib sqlite3 paying one (slow) fsync per refund.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .loadgen import Load, MissingTool, refund_load, wrk_binary
from .report import Figure, Target, print_table
from .seed import seed_ledger
from .support import ROOT, build_slow_fsync_shim, running_gateway

CLIENTS = 64


def gateway_rate(folder: Path, seconds: float, preload: Path | None, env: dict[str, str]) -> Load:
    sales = max(500, int(5_000 * seconds / 8))
    folder.mkdir()
    seed_ledger(folder / "data" / "ledger.sqlite3", sales=sales)
    with running_gateway(folder, preload=preload, **env) as gw:
        refund_load(gw.base, gw.token, clients=16, seconds=1, sales=sales, tag="warm")
        load = refund_load(
            gw.base, gw.token, clients=CLIENTS, seconds=seconds, sales=sales, tag="slow"
        )
    if load.failed:
        raise RuntimeError(f"{load.failed} refunds failed")
    return load


def naive_rate(folder: Path, seconds: float, shim: Path, delay_us: int) -> float:
    """The one-fsync-per-refund baseline in its own process, under the same shim."""
    env = {**os.environ, "LD_PRELOAD": str(shim), "SLOW_FSYNC_US": str(delay_us)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.baseline",
            "--db",
            str(folder / "naive.sqlite3"),
            "--seconds",
            str(seconds),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    return float(json.loads(out.stdout)["rate"])


def figures(
    quick: bool, folder: Path | None = None, seconds: float | None = None, delay_ms: float = 5.0
) -> list[Figure]:
    seconds = seconds or (2.0 if quick else 5.0)
    delay_us = int(delay_ms * 1000)
    wrk_binary()
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        shim = build_slow_fsync_shim(Path(tmp))
        fast = gateway_rate(Path(tmp) / "fast", seconds, None, {})
        slow = gateway_rate(Path(tmp) / "slow", seconds, shim, {"SLOW_FSYNC_US": str(delay_us)})
        naive = naive_rate(Path(tmp), seconds, shim, delay_us)
    print(
        f"gateway, {CLIENTS} clients, fsync as the disk does it:   {fast.rate:8.0f} refunds/s"
        f"  p99 {fast.p99_ms:.1f} ms",
    )
    print(
        f"gateway, {CLIENTS} clients, each fsync {delay_ms:g} ms slower:  "
        f"{slow.rate:8.0f} refunds/s"
        f"  p99 {slow.p99_ms:.1f} ms  ({slow.rate / fast.rate:.2f}x)",
    )
    print(
        f"naive stdlib sqlite3, 1 fsync/refund, same delay:  {naive:8.0f} refunds/s"
        f"  ({naive / fast.rate:.2f}x)",
        flush=True,
    )
    what = f"refunds/s, {CLIENTS} clients, fsync +{delay_ms:g} ms"
    return [
        Figure(
            "slow_fsync",
            what,
            slow.rate,
            "/s",
            fast.rate,
            "same, no delay",
            Target("ratio", ">=", 0.8),
        ),
        Figure(
            "slow_fsync",
            f"naive 1 fsync/refund, fsync +{delay_ms:g} ms",
            naive,
            "/s",
            fast.rate,
            "gateway, no delay",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure")
    args = parser.parse_args()
    try:
        print_table(figures(False, args.dir, args.seconds, args.delay_ms))
    except MissingTool as exc:
        raise SystemExit(f"bench_slow_fsync: {exc}") from None


if __name__ == "__main__":
    main()
