"""The reference HQ service's own SQLite store: schema and connection.

One file may be shared by several HQ service instances on one host (WAL, IMMEDIATE
transactions, a busy timeout): that is how they de-duplicate together. An HQ that runs its
instances on several hosts keeps the same tables in a server database instead.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
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


def open_store(path: Path) -> sqlite3.Connection:
    """Open (and create) the store; commits are fsynced, like the gateway's ledger."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(SCHEMA)
    return conn
