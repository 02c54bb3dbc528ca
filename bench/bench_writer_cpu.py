"""CPU the ledger writer spends per refund, beside a bare two-row transaction's.

Run: .venv/bin/python -m bench.bench_writer_cpu [--refunds 20000] [--dir PATH]

The ledger runs in this process, as in the daemon: refunds are handed to `Ledger` by 64
concurrent tasks, so they share group commits as they do under load. Each refund is the
whole job (idempotency check, sale state and quote, rows, two outbox events, audit record,
stored response). The writer thread's CPU time (user and system, `time.thread_time` taken
on that thread) is read before and after, so HTTP, auth and request validation, which run
on the event loop, are not in it. The baseline, in the same run on the same disk: stdlib
sqlite3 writing a refund row and an outbox row per transaction, its CPU per transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from functools import partial
from pathlib import Path

import uvloop

from edge.bus import EventBus
from edge.ledger.ledger import Ledger

from .baseline import one_fsync_per_refund
from .report import Figure, Target, print_table
from .seed import ORIGIN, refund_command, rules, seed_sales

CLIENTS = 64
REFUNDS_PER_SALE = 8  # a sale is refunded a few times at most, as in a store


async def writer_cpu(folder: Path, refunds: int) -> tuple[float, float]:
    """(writer CPU ms per refund, refunds/s) for `refunds` refunds from 64 tasks."""
    sales = max(1, (refunds + 50 * CLIENTS) // REFUNDS_PER_SALE)
    refund_rules = rules(folder)
    async with Ledger(folder / "ledger.sqlite3", EventBus(), ORIGIN) as ledger:
        await ledger.write(partial(seed_sales, count=sales))
        counter = itertools.count()

        async def client(count: int) -> None:
            for _ in range(count):
                n = next(counter)
                await ledger.create_refund(refund_command(n, n % sales), refund_rules)

        await asyncio.gather(*(client(50) for _ in range(CLIENTS)))  # warm-up
        started_cpu = await ledger.write(lambda _conn: time.thread_time())
        started = time.perf_counter()
        await asyncio.gather(*(client(refunds // CLIENTS) for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - started
        cpu = await ledger.write(lambda _conn: time.thread_time()) - started_cpu
    done = refunds // CLIENTS * CLIENTS
    return cpu / done * 1000, done / elapsed


def figures(quick: bool, folder: Path | None = None, refunds: int | None = None) -> list[Figure]:
    count = refunds or (3_000 if quick else 20_000)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        base = one_fsync_per_refund(Path(tmp) / "baseline.sqlite3", 2.0 if quick else 5.0).cpu_ms
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            per_refund, rate = runner.run(writer_cpu(Path(tmp), count))
    print(
        f"writer: {count} refunds from {CLIENTS} tasks, {rate:,.0f} refunds/s in-process;"
        f" writer thread CPU {per_refund:.3f} ms/refund; bare 2-row txn {base:.3f} ms",
        flush=True,
    )
    return [
        Figure(
            "writer_cpu",
            "writer thread CPU per refund",
            per_refund,
            "ms",
            base,
            "stdlib 2-row txn CPU",
            Target("value", "<=", 0.15),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refunds", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure")
    args = parser.parse_args()
    print_table(figures(False, args.dir, args.refunds))


if __name__ == "__main__":
    main()
