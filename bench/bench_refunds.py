"""Durable refunds per second through the LAN API, beside same-disk SQLite baselines.

Run: .venv/bin/python -m bench.bench_refunds [--seconds 5] [--dir PATH]

The gateway runs as its own process (as in a store) on a fresh ledger in --dir; the load
comes from this process over HTTP. Every refund is answered only after its transaction
(return, lines, tenders, outbox events, audit record, idempotency key) is fsynced.
Baselines, measured in the same run on the same disk:
  - sqlite3: the stdlib, one WAL/synchronous=FULL transaction per refund holding a refund
    row and an outbox row, one writer, no HTTP;
  - aiosqlite naive: the same two rows, one aiosqlite transaction per request, 64 tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import aiosqlite

from .support import ReadySocket, add_client, free_port, gateway_env, start_gateway

BASE_ROWS = (
    "CREATE TABLE refunds (id TEXT PRIMARY KEY, sale_id TEXT, total INTEGER, body TEXT);"
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, event_id TEXT, envelope TEXT);"
)
BODY = json.dumps({"lines": [{"line_id": "1", "quantity": 1, "amount": "1.00"}]})


def sqlite3_baseline(folder: Path, seconds: float) -> float:
    db = sqlite3.connect(folder / "baseline.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(BASE_ROWS)
    n, start_t = 0, time.perf_counter()
    while time.perf_counter() - start_t < seconds:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO refunds VALUES (?, 'S', 100, ?)", (f"r{n}", BODY))
        db.execute("INSERT INTO outbox (event_id, envelope) VALUES (?, ?)", (f"e{n}", BODY))
        db.execute("COMMIT")
        n += 1
    rate = n / (time.perf_counter() - start_t)
    db.close()
    return rate


async def aiosqlite_naive(folder: Path, seconds: float, tasks: int = 64) -> float:
    db = await aiosqlite.connect(folder / "naive.sqlite3", isolation_level=None)
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=FULL")
    await db.executescript(BASE_ROWS)
    lock = asyncio.Lock()
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < deadline:
            async with lock:
                await db.execute("BEGIN IMMEDIATE")
                await db.execute("INSERT INTO refunds VALUES (?, 'S', 100, ?)", (f"{w}-{i}", BODY))
                await db.execute(
                    "INSERT INTO outbox (event_id, envelope) VALUES (?, ?)", (f"{w}-{i}", BODY)
                )
                await db.execute("COMMIT")
            count += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(tasks)))
    rate = count / (time.perf_counter() - started)
    await db.close()
    return rate


SALES = 3000  # each refund returns one unit of a sale; sales rotate, as in a store
UNITS = 12


async def record_sales(http: aiohttp.ClientSession, base: str, token: str, count: int) -> None:
    """Sales with a card and a gift card tender, recorded through the API like a register."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    headers = {"Authorization": f"Bearer {token}"}
    sem = asyncio.Semaphore(16)

    async def one(n: int) -> None:
        sale = {
            "sale_id": f"BENCH-{n}",
            "occurred_at": now,
            "currency": "USD",
            "lines": [
                {
                    "line_id": "1",
                    "sku": "SHIRT",
                    "quantity": UNITS,
                    "unit_price": "19.99",
                    "discount": "1.00",
                    "tax": "12.00",
                },
                {"line_id": "2", "sku": "SOCKS", "quantity": 2, "unit_price": "4.50"},
            ],
            "order_discount": "3.33",
            "tenders": [
                {"tender_id": "g", "type": "gift_card", "amount": "50.00"},
                {"tender_id": "c", "type": "card", "amount": "206.55", "payment_token": "tok"},
            ],
        }
        async with sem, http.post(f"{base}/v1/sales", json=sale, headers=headers) as r:
            if r.status != 201:
                raise RuntimeError(await r.text())

    await asyncio.gather(*(one(n) for n in range(count)))


async def api_load(
    base: str, token: str, clients: int, seconds: float, tag: str, counter: itertools.count
) -> dict:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client(c: int) -> None:
            i = 0
            while time.perf_counter() < deadline:
                headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"{tag}-{c}-{i}"}
                n = next(counter)
                body = {
                    "sale_id": f"BENCH-{n % SALES}",
                    "refund_to": "store_credit",
                    "lines": [{"line_id": "1", "quantity": 1, "restock": True}],
                }
                t0 = time.perf_counter()
                async with http.post(f"{base}/v1/refunds", json=body, headers=headers) as r:
                    await r.read()
                    if r.status != 201:
                        raise RuntimeError(f"refund failed: {r.status} {await r.text()}")
                latencies.append(time.perf_counter() - t0)
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "rate": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "n": len(latencies),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        port = free_port()
        ready = ReadySocket(folder)
        env = gateway_env(
            folder / "data", port, NOTIFY_SOCKET=ready.path, EDGE_LOGGING__LEVEL="WARNING"
        )
        creds = add_client(env, "bench-register")
        proc = start_gateway(env, folder / "daemon.log")
        try:
            await asyncio.to_thread(ready.wait_for, "READY=1")
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as http:
                auth = {
                    "Authorization": aiohttp.encode_basic_auth(
                        creds["client_id"], creds["client_secret"]
                    )
                }
                async with http.post(
                    f"{base}/oauth/token", headers=auth, data={"grant_type": "client_credentials"}
                ) as r:
                    token = (await r.json())["access_token"]
                await record_sales(http, base, token, SALES)
            counter = itertools.count()
            results = [
                await api_load(base, token, c, args.seconds, f"c{c}", counter) for c in (1, 16, 64)
            ]
        finally:
            proc.terminate()
            proc.wait(30)
            ready.close()
        baseline = sqlite3_baseline(folder, args.seconds)
        naive = await aiosqlite_naive(folder, args.seconds)
    print(f"baseline stdlib sqlite3, 1 txn/refund (WAL, FULL): {baseline:8.0f} refunds/s")
    print(
        f"naive aiosqlite, 1 txn/request, 64 tasks:          {naive:8.0f} refunds/s "
        f"({naive / baseline:.2f}x baseline)"
    )
    for r in results:
        print(
            f"gateway API, {r['clients']:>2} concurrent clients:            "
            f"{r['rate']:8.0f} refunds/s ({r['rate'] / baseline:.2f}x baseline)  "
            f"p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  (n={r['n']})"
        )


if __name__ == "__main__":
    asyncio.run(main())
