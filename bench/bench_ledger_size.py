"""Refunds per second and p99 as the ledger fills: empty, and after a long HQ outage.

Run: .venv/bin/python -m bench.bench_ledger_size [--seconds 5] [--dir PATH]

Each refund made while HQ is unreachable is checked against the offline card limits, which
need the total of all offline card refunds HQ has not decided yet. Ledgers are seeded with
the ledger's own functions: an empty one (only the sales the load refunds), one with 10,000
offline card refunds pending, and one with 100,000 pending over 100,000 recorded sales.
The load is `wrk` at 16 clients refunding to the original card (offline, limits widened so
none is refused); the baseline is the empty ledger, measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .loadgen import Load, MissingTool, refund_load, wrk_binary
from .report import Figure, Target, print_table
from .seed import WIDE_OFFLINE_ENV, seed_ledger
from .support import running_gateway

CLIENTS = 16
LOAD_SALES = 2_000


def measure(folder: Path, seconds: float, sales: int, pending: int) -> Load:
    folder.mkdir()
    seed_ledger(
        folder / "data" / "ledger.sqlite3",
        sales=max(sales, LOAD_SALES),
        pending_card_refunds=pending,
    )
    with running_gateway(folder, **WIDE_OFFLINE_ENV) as gw:
        refund_load(
            gw.base,
            gw.token,
            clients=CLIENTS,
            seconds=1,
            sales=LOAD_SALES,
            tag="warm",
            refund_to="original",
        )
        load = refund_load(
            gw.base,
            gw.token,
            clients=CLIENTS,
            seconds=seconds,
            sales=LOAD_SALES,
            tag="size",
            refund_to="original",
        )
    if load.failed:
        raise RuntimeError(f"{load.failed} refunds failed with {pending} pending")
    return load


def figures(
    quick: bool,
    folder: Path | None = None,
    seconds: float | None = None,
    sizes: tuple[int, int] | None = None,
) -> list[Figure]:
    seconds = seconds or (2.0 if quick else 5.0)
    middle, big = sizes or ((10_000, 20_000) if quick else (10_000, 100_000))
    wrk_binary()
    cases = [("empty ledger", 0, 0), (f"{middle:,} pending", middle, middle)]
    cases.append((f"{big:,} pending, {big:,} sales", big, big))
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        loads = [
            (label, measure(Path(tmp) / f"case{n}", seconds, sales, pending))
            for n, (label, sales, pending) in enumerate(cases)
        ]
    empty = loads[0][1]
    out = []
    for label, load in loads:
        print(
            f"{label:<32} {load.rate:8.0f} refunds/s ({load.rate / empty.rate:.2f}x)"
            f"  p50 {load.p50_ms:.1f} ms  p99 {load.p99_ms:.1f} ms  (n={load.requests})",
            flush=True,
        )
        if load is empty:
            continue
        out.append(
            Figure(
                "ledger_size",
                f"offline card refunds/s, {label}",
                load.rate,
                "/s",
                empty.rate,
                "empty ledger",
                Target("ratio", ">=", 0.8),
            )
        )
        out.append(
            Figure(
                "ledger_size",
                f"p99 at {CLIENTS} clients, {label}",
                load.p99_ms,
                "ms",
                empty.p99_ms,
                "empty ledger",
                Target("ratio", "<=", 1.25),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="20,000 pending at most")
    parser.add_argument("--sizes", default=None, help="two pending counts, e.g. 10000,100000")
    parser.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure")
    args = parser.parse_args()
    sizes = None
    if args.sizes:
        middle, big = (int(n) for n in args.sizes.split(","))
        sizes = (middle, big)
    try:
        print_table(figures(args.quick, args.dir, args.seconds, sizes))
    except MissingTool as exc:
        raise SystemExit(f"bench_ledger_size: {exc}") from None


if __name__ == "__main__":
    main()
