"""What every command shares: settings from --config / EDGE_CONFIG and the environment."""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from edge.contract.timefmt import utcnow
from edge.ledger.db import apply_migrations, open_sync
from edge.settings import Settings, load_settings
from edge.sqlite_tx import immediate


def settings_from(args: argparse.Namespace) -> Settings:
    path = args.config
    return load_settings(Path(path) if path else None)


def open_ledger(settings: Settings) -> sqlite3.Connection:
    """The ledger for an operator command; safe while the daemon runs (WAL, busy timeout)."""
    conn = open_sync(settings.db_path)
    apply_migrations(conn)
    return conn


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns aligned under a header row, so a reader knows what each column is."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[datetime]:
    """`with write(conn) as at:` runs the block in one IMMEDIATE transaction stamped `at`."""
    with immediate(conn):
        yield utcnow()
