"""One IMMEDIATE transaction on a plain sqlite3 connection, for everything that writes
outside the ledger writer's group commit: migrations and operator commands. (The reference
HQ service's store starts its SQLite transactions the same way, through SQLAlchemy.)

`BEGIN IMMEDIATE` takes the write lock at the start, so a transaction never fails half-way
for want of it; the block is committed when it ends and rolled back if it raises anything
(cancellation and KeyboardInterrupt too), so no caller leaves a transaction open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """`with immediate(conn):` runs the block in one transaction (autocommit connections)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (a full disk)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
