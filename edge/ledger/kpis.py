"""The ledger's side of the refund KPIs (`GET /v1/kpis`): what it records for them and the
figures it reads, as plain functions of a connection.

Sources, all in the ledger so the figures survive restarts and can be recomputed:
- refund processing time: `sale_lookups` (one row per receipt look-up that resolved to a
  sale, written by the look-up endpoint) to the refund's `created_at`, the moment the
  register was told the refund is done;
- HQ settlement latency: a refund's `created_at` to its `updated_at` once HQ settled or
  declined it (`hq_sync` sets `updated_at` with the decision and only on a pending refund,
  so it is the time HQ's answer was applied);
- offline share: the refund's `offline` flag;
- repeat purchase: `sales.customer_ref`;
- mismatch rate: reconciliation's mismatches (`recon_mismatches`) first detected in the
  period, whatever became of them since, over refunds created in the same period.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from edge.contract.timefmt import iso, parse_iso
from edge.domain.kpis import (
    REPEAT_WINDOW_DAYS,
    Durations,
    Kpis,
    MismatchRate,
    OfflineShare,
    RepeatPurchase,
    ratio,
)

# Look-ups are kept as long as the longest KPI period reaches back (and a day), then pruned.
LOOKUPS_KEPT = timedelta(days=401)


def record_lookup(conn: sqlite3.Connection, sale_id: str, at: datetime) -> None:
    """Note that a register looked `sale_id` up at `at` (the start of a refund)."""
    conn.execute(
        "INSERT INTO sale_lookups (sale_id, looked_up_at) VALUES (?, ?)", (sale_id, iso(at))
    )


def prune_lookups(conn: sqlite3.Connection, before: datetime) -> int:
    """Forget look-ups older than `before`; returns how many."""
    cur = conn.execute("DELETE FROM sale_lookups WHERE looked_up_at < ?", (iso(before),))
    return int(cur.rowcount)


def _seconds(start: str, end: str) -> float:
    """Seconds from one stored time to another, to the millisecond they are stored with."""
    return max(0.0, round((parse_iso(end) - parse_iso(start)).total_seconds(), 3))


def processing_times(conn: sqlite3.Connection, start: str, end: str) -> list[float]:
    """For each receipt refund created in [start, end): seconds from the latest look-up of
    its sale at or before the refund (and after the sale's previous refund, which a
    look-up before it started) to the refund. Refunds with no such look-up have no time."""
    rows = conn.execute(
        "SELECT r.created_at, (SELECT max(l.looked_up_at) FROM sale_lookups l"
        " WHERE l.sale_id = r.sale_id AND l.looked_up_at <= r.created_at"
        " AND l.looked_up_at > coalesce((SELECT max(p.created_at) FROM returns p"
        " WHERE p.sale_id = r.sale_id AND p.created_at < r.created_at), ''))"
        " FROM returns r WHERE r.sale_id IS NOT NULL AND r.created_at >= ? AND r.created_at < ?",
        (start, end),
    ).fetchall()
    return [_seconds(looked, created) for created, looked in rows if looked is not None]


def settlement_times(conn: sqlite3.Connection, start: str, end: str) -> list[float]:
    """For each refund created in [start, end) that HQ settled or declined: seconds from
    its creation to HQ's decision."""
    rows = conn.execute(
        "SELECT created_at, updated_at FROM returns WHERE status IN ('settled', 'declined')"
        " AND created_at >= ? AND created_at < ?",
        (start, end),
    ).fetchall()
    return [_seconds(created, decided) for created, decided in rows]


def refund_counts(conn: sqlite3.Connection, start: str, end: str) -> tuple[int, int]:
    """(refunds, of them made offline) created in [start, end)."""
    total, offline = conn.execute(
        "SELECT count(*), coalesce(sum(offline), 0) FROM returns"
        " WHERE created_at >= ? AND created_at < ?",
        (start, end),
    ).fetchone()
    return int(total), int(offline)


def repeat_purchases(
    conn: sqlite3.Connection, start: str, end: str, window: timedelta
) -> tuple[int, int]:
    """(customers refunded in [start, end), of them those who bought again within `window`
    after one of those refunds). Customers are told apart by the sale's `customer_ref`;
    declined refunds gave nothing back and are left out."""
    refunded: dict[str, list[str]] = {}
    for customer, created in conn.execute(
        "SELECT s.customer_ref, r.created_at FROM returns r JOIN sales s USING (sale_id)"
        " WHERE s.customer_ref IS NOT NULL AND r.status <> 'declined'"
        " AND r.created_at >= ? AND r.created_at < ?",
        (start, end),
    ):
        refunded.setdefault(customer, []).append(created)
    repeat = 0
    for customer, times in refunded.items():
        for created in times:
            (next_sale,) = conn.execute(
                "SELECT min(occurred_at) FROM sales WHERE customer_ref = ? AND occurred_at > ?",
                (customer, created),
            ).fetchone()
            if next_sale is not None and parse_iso(next_sale) <= parse_iso(created) + window:
                repeat += 1
                break
    return len(refunded), repeat


def mismatches_detected(conn: sqlite3.Connection, start: str, end: str) -> int:
    """Distinct mismatches first detected in [start, end), open, resolved or accepted
    since: an accepted mismatch still happened."""
    (count,) = conn.execute(
        "SELECT count(*) FROM recon_mismatches WHERE first_detected_at >= ?"
        " AND first_detected_at < ?",
        (start, end),
    ).fetchone()
    return int(count)


def kpis(conn: sqlite3.Connection, start: datetime, end: datetime) -> Kpis:
    """Every KPI over [start, end)."""
    lo, hi = iso(start), iso(end)
    refunds, offline = refund_counts(conn, lo, hi)
    mismatches = mismatches_detected(conn, lo, hi)
    customers, repeat = repeat_purchases(conn, lo, hi, timedelta(days=REPEAT_WINDOW_DAYS))
    return Kpis(
        from_=lo,
        to=hi,
        refund_processing=Durations.of(processing_times(conn, lo, hi)),
        hq_settlement=Durations.of(settlement_times(conn, lo, hi)),
        mismatch_rate=MismatchRate(
            mismatches=mismatches, refunds=refunds, rate=ratio(mismatches, refunds)
        ),
        offline_share=OfflineShare(offline=offline, refunds=refunds, rate=ratio(offline, refunds)),
        repeat_purchase=RepeatPurchase(
            customers=customers,
            repeat=repeat,
            rate=ratio(repeat, customers),
            window_days=REPEAT_WINDOW_DAYS,
        ),
    )
