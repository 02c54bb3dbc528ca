"""Every benchmark in one run, and one table of their figures against same-run baselines.

Run from the repository root:

    .venv/bin/python -m bench            # the full run (about 10 minutes; the README's figures)
    .venv/bin/python -m bench --quick    # shorter runs and smaller ledgers (about 3 minutes)
    .venv/bin/python -m bench --only refunds,idle

Each benchmark prints its own lines as it goes; the table at the end has one row a figure,
its baseline, the ratio and the target. The exit status is 0 whether targets are met or not
(the table says which); it is 1 only when a benchmark could not run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import (
    bench_fleet,
    bench_hq_fleet_scale,
    bench_hq_recovery,
    bench_idle,
    bench_ledger_size,
    bench_recon_match,
    bench_refunds,
    bench_relay_drain,
    bench_scan_latency,
    bench_slow_fsync,
    bench_writer_cpu,
)
from .loadgen import MissingTool
from .report import Figure, print_table

BENCHMARKS: dict[str, Callable[[bool, Path | None], list[Figure]]] = {
    "refunds": bench_refunds.figures,
    "slow_fsync": bench_slow_fsync.figures,
    "writer_cpu": bench_writer_cpu.figures,
    "ledger_size": bench_ledger_size.figures,
    "relay_drain": bench_relay_drain.figures,
    "idle": bench_idle.figures,
    "scan_latency": lambda quick, _folder: bench_scan_latency.figures(quick),
    "fleet": lambda quick, _folder: bench_fleet.figures(quick),
    "hq_recovery": bench_hq_recovery.figures,
    "hq_fleet_scale": bench_hq_fleet_scale.figures,
    "recon_match": bench_recon_match.figures,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, smaller ledgers")
    parser.add_argument("--only", default="", help=f"comma-separated: {', '.join(BENCHMARKS)}")
    parser.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    figures: list[Figure] = []
    failed: list[str] = []
    for name in chosen:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            figures += BENCHMARKS[name](args.quick, args.dir)
        except MissingTool as exc:
            print(f"{name}: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
        except Exception as exc:  # one benchmark's failure must not lose the others' figures
            print(f"{name} failed: {exc!r}", file=sys.stderr, flush=True)
            failed.append(name)
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    print_table(figures)
    if failed:
        print(f"\ncould not run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
