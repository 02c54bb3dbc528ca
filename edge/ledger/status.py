"""What the ledger holds at a glance: the one source of the figures that /readyz, the
status page, /metrics and HQ's retained health message all show, so they cannot disagree.

Three depths of reading, by how often they are asked: `outbox_glance` is what every
Prometheus scrape reads (index look-ups only, no table scan), `ledger_status` what /readyz
and health read, and `page_status` what the status page adds: the outbox depth over the
last hours, rebuilt from the outbox's own write and ack times (so it survives restarts),
the latest refunds as safe summaries, and reconciliation's open mismatches.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from edge.contract.timefmt import iso, parse_iso
from edge.domain.money import from_minor
from edge.ledger import recon
from edge.ledger.outbox import OutboxStats, stats


@dataclass(frozen=True)
class LedgerStatus:
    outbox: OutboxStats
    refunds_today: int
    refunds_awaiting_hq: int


def refunds_today(conn: sqlite3.Connection, now: datetime) -> int:
    """Refunds recorded since midnight UTC of `now`'s day (the ledger's clock is UTC)."""
    utc = now.astimezone(UTC)
    return refunds_since(conn, datetime(utc.year, utc.month, utc.day, tzinfo=UTC))


def refunds_since(conn: sqlite3.Connection, start: datetime) -> int:
    (count,) = conn.execute(
        "SELECT count(*) FROM returns WHERE created_at >= ?", (iso(start),)
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


# ---- read at every scrape ------------------------------------------------------------


@dataclass(frozen=True)
class OutboxGlance:
    """The outbox as /metrics reads it at every scrape."""

    pending: int
    refunds_queued: int  # pending `refund.requested` events: refunds HQ has not heard of
    oldest_pending_at: datetime | None
    last_acked_at: datetime | None

    @classmethod
    def of(cls, outbox: OutboxStats) -> OutboxGlance:
        return cls(
            outbox.pending,
            outbox.refunds_queued,
            None if outbox.oldest_pending_at is None else parse_iso(outbox.oldest_pending_at),
            None if outbox.last_acked_at is None else parse_iso(outbox.last_acked_at),
        )


def outbox_glance(conn: sqlite3.Connection) -> OutboxGlance:
    """Walks only the pending events and two index ends (`edge.ledger.outbox.stats`)."""
    return OutboxGlance.of(stats(conn))


# ---- read for the status page ----------------------------------------------------------


@dataclass(frozen=True)
class DepthPoint:
    at: datetime
    pending: int


@dataclass(frozen=True)
class RecentRefund:
    """A refund as a page without a login may show it: no token, no card data, no names."""

    return_id: str
    created_at: datetime
    kind: str
    status: str
    offline: bool
    total: Decimal
    currency: str
    tenders: tuple[str, ...]  # tender types, e.g. ("card", "store_credit")


@dataclass(frozen=True)
class ReportGlance:
    """The newest reconciliation report, in counts only."""

    report_id: str
    generated_at: datetime
    checked: int
    matched: int
    mismatches: int


@dataclass(frozen=True)
class PageStatus:
    ledger: LedgerStatus
    outbox: OutboxGlance
    depth: list[DepthPoint]
    refunds: list[RecentRefund]
    refunds_store_day: int  # since midnight in the store's time zone
    mismatches: recon.OpenCounts
    latest_report: ReportGlance | None


def depth_history(
    conn: sqlite3.Connection, now: datetime, span: timedelta, step: timedelta, pending_now: int
) -> list[DepthPoint]:
    """The outbox depth at `now - k * step` for k = span/step .. 0, oldest first.

    Rebuilt backwards from the depth now: an event written after a point was not there yet,
    and one acked after it was still waiting. Acked events are kept for `hq.acked_retention_days`,
    so the history is exact while that is longer than `span`; an event HQ asked to have sent
    again lost its ack time and counts as waiting since it was written.
    """
    counted = (iso(now), step.total_seconds(), iso(now - span))
    written = _per_step(conn.execute(WRITTEN_PER_STEP, counted))
    acked = _per_step(conn.execute(ACKED_PER_STEP, counted))
    points: list[DepthPoint] = []
    depth = pending_now
    for k in range(int(span / step) + 1):
        points.append(DepthPoint(now - k * step, max(0, depth)))
        depth += acked.get(k, 0) - written.get(k, 0)
    points.reverse()
    return points


# How many events were written, and acked, in each step back from now (k = 0 the latest),
# counted by SQLite so a busy outbox is not copied into Python: ?1 now, ?2 the step in
# seconds, ?3 the start of the span. Both read only the span's events: events are numbered
# in the order they are written, so the written ones are those after the last event
# written before the span (found walking back from the newest), and the acked ones come
# from the partial index of acked events by ack time.
WRITTEN_PER_STEP = (
    "SELECT CAST((julianday(?1) - julianday(occurred_at)) * 86400 / ?2 AS INTEGER) AS k,"
    " count(*) FROM outbox WHERE seq > coalesce((SELECT seq FROM outbox"
    " WHERE occurred_at <= ?3 ORDER BY seq DESC LIMIT 1), 0) AND occurred_at > ?3 GROUP BY k"
)
ACKED_PER_STEP = (
    "SELECT CAST((julianday(?1) - julianday(acked_at)) * 86400 / ?2 AS INTEGER) AS k,"
    " count(*) FROM outbox INDEXED BY outbox_acked_by_age"
    " WHERE state = 'acked' AND acked_at > ?3 GROUP BY k"
)


def _per_step(rows: sqlite3.Cursor) -> dict[int, int]:
    counts: dict[int, int] = {}
    for k, n in rows:
        latest = max(0, int(k))  # a time ahead of the clock counts in the latest step
        counts[latest] = counts.get(latest, 0) + int(n)
    return counts


def recent_refunds(conn: sqlite3.Connection, limit: int) -> list[RecentRefund]:
    """The newest refunds with their tender types (never a token or a card number)."""
    rows = conn.execute(
        "SELECT r.return_id, r.created_at, r.kind, r.status, r.offline, r.total, r.currency,"
        " (SELECT group_concat(type, ',') FROM (SELECT DISTINCT type FROM return_tenders t"
        "  WHERE t.return_id = r.return_id ORDER BY type))"
        " FROM returns r ORDER BY r.created_at DESC, r.return_id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        RecentRefund(
            return_id=str(rid),
            created_at=parse_iso(created),
            kind=str(kind),
            status=str(state),
            offline=bool(offline),
            total=from_minor(int(total), str(currency)),
            currency=str(currency),
            tenders=tuple(str(tenders).split(",")) if tenders else (),
        )
        for rid, created, kind, state, offline, total, currency, tenders in rows
    ]


def page_status(
    conn: sqlite3.Connection,
    now: datetime,
    *,
    span: timedelta,
    step: timedelta,
    refunds: int,
    day_start: datetime,
) -> PageStatus:
    """Everything the status page shows of the ledger, in one job on the reader."""
    ledger = ledger_status(conn, now)
    glance = OutboxGlance.of(ledger.outbox)
    report = recon.latest_report(conn)
    return PageStatus(
        ledger=ledger,
        outbox=glance,
        depth=depth_history(conn, now, span, step, glance.pending),
        refunds=recent_refunds(conn, refunds),
        refunds_store_day=refunds_since(conn, day_start),
        mismatches=recon.open_counts(conn),
        latest_report=None
        if report is None
        else ReportGlance(
            report.report_id,
            report.generated_at,
            report.checked,
            report.matched,
            len(report.mismatches),
        ),
    )
