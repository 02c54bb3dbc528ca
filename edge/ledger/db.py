"""Opening the ledger database: pragmas that make a commit durable, and migrations.

Every connection runs in WAL mode with `synchronous=FULL`, so a commit that returned
has been fsynced: a power cut cannot take back a refund the register was told about.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from edge.errors import StorageError

T = TypeVar("T")

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
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
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
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


def open_sync(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A plain sqlite3 connection with the ledger's pragmas, for CLI tools and tests."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    configure(conn, read_only=read_only)
    return conn


async def open_async(path: Path, *, read_only: bool = False) -> aiosqlite.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
        await run_in_thread(conn, lambda c: configure(c, read_only=read_only))
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path}: {exc}") from exc
    return conn


async def run_in_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn` on the connection's own thread, so a whole transaction costs one hop.

    aiosqlite serializes every call on one worker thread per connection; handing it a
    whole function keeps a multi-statement transaction atomic with respect to the event
    loop and avoids a thread round trip per statement.
    """

    def call() -> T:
        return fn(conn._conn)  # the worker thread owns it

    result: Any = await conn._execute(call)  # type: ignore[no-untyped-call]  # thread hand-off
    return result  # type: ignore[no-any-return]
