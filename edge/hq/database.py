"""Where the HQ store lives: the database URL, its engines, and its migrations.

Two backends: SQLite (`sqlite+aiosqlite:///path`) for one instance, or several on one host;
PostgreSQL (`postgresql+psycopg://user@host/db`) for several instances on any number of
hosts. SQLite commits are fsynced (WAL, synchronous=FULL) and every write transaction
starts with `BEGIN IMMEDIATE`, so writers queue for the lock up front instead of failing
half-way; PostgreSQL runs at READ COMMITTED and the queries lock what they change.
"""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from edge.errors import EdgeError

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 30_000
# any constant both sides agree on: instances starting together migrate one after another
MIGRATION_LOCK = 0x4551_4853  # "EQHS"

DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}


class DatabaseUrlError(EdgeError, ValueError):
    """The HQ store's URL names no database this service can use (a ValueError, so that
    settings validation reports it as such)."""


def database_url(value: str | Path) -> URL:
    """The store's URL from a URL or a plain SQLite file path; the async driver filled in."""
    if isinstance(value, Path) or "://" not in value:
        return URL.create(DRIVERS["sqlite"], database=str(value))
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise DatabaseUrlError(f"not a database URL: {exc}") from None
    backend = url.get_backend_name()
    if backend == "postgres":  # the scheme libpq and many hosting panels print
        backend = "postgresql"
    if backend not in DRIVERS:
        raise DatabaseUrlError(f"the HQ store runs on sqlite or postgresql, not {backend!r}")
    if backend == "sqlite" and not url.database:
        raise DatabaseUrlError("an SQLite URL needs a file path (sqlite+aiosqlite:///path)")
    return url.set(drivername=DRIVERS[backend])


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def create_engines(url: URL) -> tuple[AsyncEngine, AsyncEngine]:
    """The engine for writes and the one for reads (the same one on PostgreSQL).

    Creates no connection yet; the first query opens one.
    """
    if not is_sqlite(url):
        engine = create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
        return engine, engine
    writer = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=300)
    reader = create_async_engine(url, pool_size=4, max_overflow=4)
    _sqlite_transactions(writer, "BEGIN IMMEDIATE")
    _sqlite_transactions(reader, "BEGIN")
    return writer, reader


def _sqlite_transactions(engine: AsyncEngine, begin: str) -> None:
    """Durable commits, a busy timeout, and SQLAlchemy (not the driver) starting transactions."""

    @event.listens_for(engine.sync_engine, "connect")
    def connected(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the `begin` hook below says BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # first: the next one waits
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def began(conn: Connection) -> None:
        conn.exec_driver_sql(begin)


async def migrate(engine: AsyncEngine) -> None:
    """Bring the store's tables to the newest revision, one instance at a time.

    On SQLite, instances on one host that start together take turns through a lock file
    beside the store: the first connection switches a new file to WAL, which SQLite may
    refuse at once (not after its busy timeout) while another process holds the file.
    """
    if not is_sqlite(engine.url):
        await _migrate(engine)
        return
    path = Path(engine.url.database or "")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".migrate-lock")
    with lock.open("a") as handle:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            await _migrate(engine)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def _migrate(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            lock = text("SELECT pg_advisory_xact_lock(:key)")
            await conn.execute(lock, {"key": MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


def _upgrade(conn: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
