"""The baseline every refund figure is compared with: stdlib sqlite3, one fsync per refund.

One WAL / synchronous=FULL transaction per refund, holding a refund row and an outbox row,
one writer, no HTTP, validation, pricing, audit or idempotency: what the disk allows when
each refund pays its own fsync. Run as a module it prints its figures as JSON, so a
benchmark can measure it in a process of its own (e.g. under the slow-fsync shim).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SCHEMA = (
    "CREATE TABLE refunds (id TEXT PRIMARY KEY, sale_id TEXT, total INTEGER, body TEXT);"
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, event_id TEXT, envelope TEXT);"
)
BODY = json.dumps({"lines": [{"line_id": "1", "quantity": 1, "amount": "1.00"}]})


@dataclass(frozen=True)
class Baseline:
    rate: float  # refunds per second
    cpu_ms: float  # CPU (user + system) per refund


def one_fsync_per_refund(db: Path, seconds: float) -> Baseline:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    n, started, cpu_started = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - started < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO refunds VALUES (?, 'S', 100, ?)", (f"r{n}", BODY))
        conn.execute("INSERT INTO outbox (event_id, envelope) VALUES (?, ?)", (f"e{n}", BODY))
        conn.execute("COMMIT")
        n += 1
    elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
    conn.close()
    return Baseline(rate=n / elapsed, cpu_ms=cpu / n * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(asdict(one_fsync_per_refund(args.db, args.seconds))))


if __name__ == "__main__":
    main()
