"""Opening the ledger again in the same process must keep SQLite's locks: closing any
descriptor of a file drops every POSIX lock the process holds on it. In WAL mode every open
connection holds a shared lock on the database file; without it another process may take
the file over (here: switch it out of WAL mode) under the gateway's feet, and committed
refunds can vanish (seen as lost refunds in the SIGKILL drain test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge.ledger.db import open_sync

TAKE_OVER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    print(conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0])
except sqlite3.OperationalError as exc:
    print(exc)
"""


def other_process_tries_to_take_over(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TAKE_OVER, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


def test_a_second_connection_in_the_process_keeps_the_first_ones_lock(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    writer = open_sync(path)
    writer.execute("CREATE TABLE t (x)")
    assert other_process_tries_to_take_over(path) == "database is locked"
    reader = open_sync(path, read_only=True)  # the path that once closed a descriptor
    try:
        assert other_process_tries_to_take_over(path) == "database is locked"
    finally:
        reader.close()
        writer.close()
    assert other_process_tries_to_take_over(path) == "delete"  # the check can succeed
