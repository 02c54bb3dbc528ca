"""Opening the ledger database: pragmas that make a commit durable, and migrations.

Every connection runs in WAL mode with `synchronous=FULL`, so a commit that returned
has been fsynced: a power cut cannot take back a refund the register was told about.

The ledger holds payment tokens, sales and the audit log, so its files are readable by
the gateway's user only (0600): the database file is created with that mode before
SQLite opens it (SQLite gives its -wal and -shm files the database file's mode), and
files left open to others by an older version or a copy are tightened on open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import TypeVar

from edge.errors import StorageError
from edge.sqlite_tx import immediate

T = TypeVar("T")
log = logging.getLogger(__name__)

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    # Temporary files in memory: above all the statement journal that keeps each group-commit
    # job's SAVEPOINT undoable, which SQLite otherwise spills to a temporary file on disk.
    # It only serves rolling back inside an open transaction (never crash recovery: that is
    # the WAL's), so keeping it in memory costs no durability.
    "PRAGMA temp_store=MEMORY",
)


def migrations() -> list[tuple[int, str]]:
    """Versioned SQL scripts shipped in the package, in order."""
    folder = resources.files("edge.ledger") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            found.append((int(name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version, each step in its own transaction."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for version, script in migrations():
        if version <= current:
            continue
        with immediate(conn):
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(version)}")
        current = version
    return int(current)


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (triggers contain inner semicolons)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buf:
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def configure(conn: sqlite3.Connection, *, read_only: bool = False) -> None:
    conn.row_factory = sqlite3.Row
    for pragma in PRAGMAS:
        conn.execute(pragma)
    if read_only:
        conn.execute("PRAGMA query_only=ON")


def make_private(path: Path) -> None:
    """Create the database file owner-only if missing; tighten it and its -wal/-shm."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Never open and close a descriptor of a database this process may already have open:
    # closing any descriptor of a file drops all of the process's POSIX locks on it, and
    # SQLite's locking (and so its durability) depends on them. Only a new file is touched.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)
        except FileNotFoundError:
            continue
        except PermissionError:  # not the owner: the owner's own process tightens it
            log.warning("%s is readable by others and is not ours to change", file)


def ledger_bytes(path: Path) -> int:
    """The ledger's size on disk: the database and its write-ahead log (the status page and
    HQ's health message show the same figure)."""
    size = 0
    for file in (path, path.with_name(path.name + "-wal")):
        try:
            size += file.stat().st_size
        except FileNotFoundError:
            continue
    return size


def open_sync(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A plain sqlite3 connection with the ledger's pragmas, for CLI tools and tests."""
    make_private(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    configure(conn, read_only=read_only)
    return conn


def open_read_only(path: Path) -> sqlite3.Connection:
    """The ledger for reading only, beside a running gateway (`doctor`, `backup`): opening it
    never creates a database; raises sqlite3.Error when it cannot be opened."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class ThreadConnection:
    """A sqlite3 connection owned by one worker thread; each call runs there whole.

    Handing the thread a whole function keeps a multi-statement transaction atomic with
    respect to the event loop and costs one thread hop per transaction, not per statement.
    Built on the standard library alone: sqlite3 and a one-thread executor.
    """

    def __init__(self, path: Path, *, read_only: bool, name: str) -> None:
        self._path = path
        self._read_only = read_only
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> ThreadConnection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = await self._call(lambda: open_sync(self._path, read_only=self._read_only))
        except sqlite3.Error as exc:
            self._executor.shutdown(wait=True)
            raise StorageError(f"cannot open {self._path}: {exc}") from exc
        return self

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` on the owning thread."""
        conn = self._conn
        if conn is None:
            raise StorageError(f"{self._path} is closed")
        return await self._call(lambda: fn(conn))

    async def close(self) -> None:
        """Close the connection on its thread, then end the thread. Safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._call(conn.close)
            self._executor.shutdown(wait=True)

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
