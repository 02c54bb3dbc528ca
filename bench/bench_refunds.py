"""Durable refunds per second through the LAN API, beside the same disk's one-fsync-per-refund.

Run: .venv/bin/python -m bench.bench_refunds [--seconds 5] [--dir PATH]

The gateway runs as its own process (as in a store) on a ledger seeded with sales; the load
comes from `wrk` (C, one thread) with bench/refunds.lua: every request refunds one unit of
a sale, under its own Idempotency-Key, over keep-alive connections, one per register. Every
refund is answered only after its transaction (return, lines, tenders, outbox events, audit
record, idempotency key) is fsynced. The baseline, measured in the same run on the same
disk: stdlib sqlite3, one WAL/synchronous=FULL transaction per refund (bench/baseline.py).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .baseline import one_fsync_per_refund
from .loadgen import Load, MissingTool, refund_load, wrk_binary
from .report import Figure, Target, print_table
from .seed import seed_ledger
from .support import proc_usage, running_gateway

CLIENTS = (1, 16, 64)
REFUNDS_PER_SALE = 8


def sales_for(seconds: float) -> int:
    """Enough sales that each is refunded only a few times over all runs (~5,000 refunds/s)."""
    return max(500, int(5_000 * seconds * len(CLIENTS) / REFUNDS_PER_SALE))


def gateway_loads(folder: Path, seconds: float) -> list[tuple[Load, float]]:
    """Each load, with the gateway process's CPU time (all threads) per refund in ms: on a
    machine shared with other work the rate moves a lot between runs, the CPU much less."""
    sales = sales_for(seconds)
    seed_ledger(folder / "data" / "ledger.sqlite3", sales=sales)
    loads = []
    with running_gateway(folder) as gw:
        refund_load(gw.base, gw.token, clients=16, seconds=1, sales=sales, tag="warm")
        for c in CLIENTS:
            before = proc_usage(gw.pid).cpu_s
            load = refund_load(
                gw.base, gw.token, clients=c, seconds=seconds, sales=sales, tag=f"c{c}"
            )
            cpu = proc_usage(gw.pid).cpu_s - before
            loads.append((load, cpu / max(1, load.requests) * 1000))
    for load, _ in loads:
        if load.failed:
            raise RuntimeError(f"{load.failed} refunds failed at {load.clients} clients")
    return loads


def figures(quick: bool, folder: Path | None = None, seconds: float | None = None) -> list[Figure]:
    seconds = seconds or (2.0 if quick else 5.0)
    wrk_binary()
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        base = one_fsync_per_refund(Path(tmp) / "baseline.sqlite3", seconds)
        loads = gateway_loads(Path(tmp), seconds)
    print(f"baseline stdlib sqlite3, 1 txn/refund (WAL, FULL): {base.rate:8.0f} refunds/s")
    for r, cpu_ms in loads:
        print(
            f"gateway API, {r.clients:>2} concurrent clients:            "
            f"{r.rate:8.0f} refunds/s ({r.rate / base.rate:.2f}x baseline)  "
            f"p50 {r.p50_ms:.1f} ms  p99 {r.p99_ms:.1f} ms  (n={r.requests})  "
            f"process CPU {cpu_ms:.2f} ms/refund",
            flush=True,
        )
    by_clients = {r.clients: (r, cpu_ms) for r, cpu_ms in loads}
    out = []
    for r, _ in loads:
        target = Target("ratio", ">=", 0.5) if r.clients == 64 else None
        out.append(
            Figure(
                "refunds",
                f"durable refunds/s, {r.clients} client(s)",
                r.rate,
                "/s",
                base.rate,
                "stdlib 1 fsync/refund",
                target,
            )
        )
    p99 = by_clients[16][0].p99_ms
    out.append(
        Figure(
            "refunds",
            "p99 latency, 16 clients",
            p99,
            "ms",
            by_clients[1][0].p50_ms,
            "p50 at 1 client",
            Target("value", "<=", 10),
        )
    )
    out.append(
        Figure(
            "refunds",
            "gateway CPU per refund, 64 clients",
            by_clients[64][1],
            "ms",
            base.cpu_ms,
            "stdlib 1 fsync/refund CPU",
            None,
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure")
    args = parser.parse_args()
    try:
        print_table(figures(False, args.dir, args.seconds))
    except MissingTool as exc:
        raise SystemExit(f"bench_refunds: {exc}") from None


if __name__ == "__main__":
    main()
