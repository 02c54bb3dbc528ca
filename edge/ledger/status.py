"""What the ledger holds at a glance: the one source of the figures that /readyz, the
status page and HQ's retained health message all show, so they cannot disagree."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from edge.contract.timefmt import iso
from edge.ledger.outbox import OutboxStats, stats


@dataclass(frozen=True)
class LedgerStatus:
    outbox: OutboxStats
    refunds_today: int
    refunds_awaiting_hq: int


def refunds_today(conn: sqlite3.Connection, now: datetime) -> int:
    """Refunds recorded since midnight UTC of `now`'s day (the ledger's clock is UTC)."""
    utc = now.astimezone(UTC)
    midnight = iso(datetime(utc.year, utc.month, utc.day, tzinfo=UTC))
    (count,) = conn.execute(
        "SELECT count(*) FROM returns WHERE created_at >= ?", (midnight,)
    ).fetchone()
    return int(count)


def ledger_status(conn: sqlite3.Connection, now: datetime) -> LedgerStatus:
    """Outbox depth and age, refunds recorded today, refunds whose outcome HQ still owes."""
    (waiting,) = conn.execute("SELECT count(*) FROM returns WHERE status = 'pending'").fetchone()
    return LedgerStatus(stats(conn), refunds_today(conn, now), int(waiting))


def touch(conn: sqlite3.Connection) -> None:
    """A write job that writes nothing: it succeeds only if the writer can take the write
    lock and commit, which is what readiness means."""
    conn.execute("SELECT 1").fetchone()
