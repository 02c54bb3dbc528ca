"""The HQ store's migrations: a new database, a store made by the previous version
(plain SQLite, no migration history), instances starting together, and the URLs."""

from __future__ import annotations

import asyncio
import sqlite3
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from edge.hq import settlement, store
from edge.hq.database import DatabaseUrlError, database_url
from edge.hq.store import HqStore, HqStoreError
from tests.hq.test_store import envelope, incoming

# the schema the first HQ store (stdlib sqlite3, no migrations) created, verbatim
PREVIOUS_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id     TEXT PRIMARY KEY,
    store_id     TEXT NOT NULL,
    gateway_id   TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    type         TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    envelope     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_stream ON events(store_id, gateway_id, seq);

CREATE TABLE IF NOT EXISTS streams (
    store_id           TEXT NOT NULL,
    gateway_id         TEXT NOT NULL,
    contiguous_through INTEGER NOT NULL DEFAULT 0,
    high_seq           INTEGER NOT NULL DEFAULT 0,
    received           INTEGER NOT NULL DEFAULT 0,
    duplicates         INTEGER NOT NULL DEFAULT 0,
    gap_since          TEXT,
    last_event_at      TEXT,
    PRIMARY KEY (store_id, gateway_id)
);

CREATE TABLE IF NOT EXISTS refunds (
    return_id     TEXT PRIMARY KEY,
    event_id      TEXT NOT NULL,
    store_id      TEXT NOT NULL,
    gateway_id    TEXT NOT NULL,
    currency      TEXT NOT NULL,
    total         TEXT NOT NULL,
    request       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('received', 'settled', 'declined')),
    processor_ref TEXT,
    erp_ref       TEXT,
    reason        TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    received_at   TEXT NOT NULL,
    decided_at    TEXT
);
CREATE INDEX IF NOT EXISTS refunds_open ON refunds(status) WHERE status = 'received';

CREATE TABLE IF NOT EXISTS orders (
    sale_id    TEXT PRIMARY KEY,
    sale       TEXT NOT NULL,
    loaded_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS gateways (
    store_id    TEXT NOT NULL,
    gateway_id  TEXT NOT NULL,
    state       TEXT,
    bd_seq      INTEGER,
    version     TEXT,
    state_at    TEXT,
    health      TEXT,
    health_at   TEXT,
    PRIMARY KEY (store_id, gateway_id)
);

CREATE TABLE IF NOT EXISTS alerts (
    id          INTEGER PRIMARY KEY,
    store_id    TEXT NOT NULL,
    gateway_id  TEXT NOT NULL,
    alert       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    severity    TEXT NOT NULL,
    state       TEXT NOT NULL,
    detail      TEXT NOT NULL,
    at          TEXT NOT NULL
);
"""


async def head_of(hq: HqStore) -> str:
    async def query(conn: AsyncConnection) -> str:
        result = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return str(result.scalar_one())

    return await hq.read(query)


async def test_a_store_of_the_previous_version_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "hq.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(PREVIOUS_SCHEMA)
    old.execute(
        "INSERT INTO refunds (return_id, event_id, store_id, gateway_id, currency, total,"
        " request, status, received_at) VALUES ('R-OLD', 'E', '0042', 'gw-01', 'USD', '2.50',"
        " '{}', 'received', '2026-11-01T00:00:00.000Z')"
    )
    old.commit()
    old.close()
    async with HqStore(path) as hq:
        assert await head_of(hq) == "0003"
        assert await hq.read(settlement.open_refunds) == ["R-OLD"]
        claim = partial(settlement.claim_refund, return_id="R-OLD", instance="hq-a", lease_ms=1000)
        held = await hq.write(claim)
        assert held.request is not None
        assert held.request["claims"] == 1
        result = await hq.write(partial(store.ingest, items=[incoming(envelope(1))]))
        assert result.new_events == 1


async def test_opening_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "hq.sqlite3"
    async with HqStore(path) as hq:
        await hq.write(partial(store.ingest, items=[incoming(envelope(1))]))
    async with HqStore(f"sqlite+aiosqlite:///{path}") as hq:
        assert await head_of(hq) == "0003"
        (stream,) = await hq.read(store.stream_report)
        assert stream["received"] == 1


async def test_sqlite_commits_are_durable(tmp_path: Path) -> None:
    async with HqStore(tmp_path / "hq.sqlite3") as hq:

        async def pragmas(conn: AsyncConnection) -> tuple[str, int, int]:
            run = conn.exec_driver_sql
            mode = (await run("PRAGMA journal_mode")).scalar_one()
            sync = (await run("PRAGMA synchronous")).scalar_one()
            busy = (await run("PRAGMA busy_timeout")).scalar_one()
            return mode, sync, busy

        assert await hq.write(pragmas) == ("wal", 2, 30_000)  # 2: FULL


async def test_instances_starting_together_migrate_in_turn(pg_url: str) -> None:
    stores = [HqStore(pg_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert {await head_of(s) for s in stores} == {"0003"}
    finally:
        await asyncio.gather(*(s.close() for s in stores))


def test_store_urls() -> None:
    assert database_url(Path("/var/lib/hq.sqlite3")).render_as_string() == (
        "sqlite+aiosqlite:////var/lib/hq.sqlite3"
    )
    assert database_url("hq.sqlite3").database == "hq.sqlite3"
    pg = database_url("postgres://hq:secret@db.example/hq")
    assert pg.drivername == "postgresql+psycopg"
    assert pg.render_as_string(hide_password=True) == "postgresql+psycopg://hq:***@db.example/hq"
    for bad in ("mysql://db/hq", "sqlite+aiosqlite://", "oracle+oracledb://db/hq"):
        with pytest.raises(DatabaseUrlError):
            database_url(bad)


async def test_a_store_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hq.sqlite3"
    async with HqStore(path):
        pass
    newer = sqlite3.connect(path)
    newer.execute("UPDATE alembic_version SET version_num = '0099'")
    newer.commit()
    newer.close()
    with pytest.raises(HqStoreError, match="0099"):
        async with HqStore(path):
            pass


OPEN_STORE = """
import asyncio, sys
from edge.hq.store import HqStore

async def main() -> None:
    async with HqStore(sys.argv[1]):
        pass

asyncio.run(main())
"""


def test_instances_starting_together_on_one_sqlite_file_all_open_it(tmp_path: Path) -> None:
    """Several instances on one host, started at once on a new store: each one opens it
    (the first switches the new file to WAL and migrates; the others wait their turn)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    db = tmp_path / "hq.sqlite3"
    for _ in range(3):
        if db.exists():
            for leftover in tmp_path.iterdir():
                leftover.unlink()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_STORE, str(db)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(6)
        ]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, "\n".join(outputs)[-3000:]
    with sqlite3.connect(db) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == "0003"
