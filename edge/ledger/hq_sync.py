"""What the HQ relay reads from and writes to the ledger, as plain functions of a connection.

The relay runs the writes through `Ledger.write`, so acks share group commit with refunds:
many acks cost one fsync. Outbox rows are the truth: an event stays `pending` until HQ acked
its `event_id`, and acks are idempotent, so a duplicate or late ack changes nothing twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from edge.contract.payloads import AckStatus
from edge.contract.timefmt import iso
from edge.domain.views import RefundView
from edge.ledger.audit import append_audit
from edge.ledger.refunds import refund_view

FINAL_STATUSES = ("settled", "declined")


@dataclass(frozen=True)
class PendingEvent:
    seq: int
    event_id: str
    envelope: str


@dataclass(frozen=True)
class Ack:
    """HQ's answer for one event; settled/declined ones also carry the refund's outcome."""

    event_id: str
    status: AckStatus
    return_id: str | None = None
    processor_ref: str | None = None
    erp_ref: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Sent:
    """Publishes of one event since the last flush, for the `attempts` column."""

    event_id: str
    times: int
    at: str


@dataclass
class AckOutcome:
    newly_acked: int = 0
    refunds: list[RefundView] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def fetch_pending(conn: sqlite3.Connection, after_seq: int, limit: int) -> list[PendingEvent]:
    """Pending events after `after_seq`, in seq order."""
    rows = conn.execute(
        "SELECT seq, event_id, envelope FROM outbox WHERE state = 'pending' AND seq > ?"
        " ORDER BY seq LIMIT ?",
        (after_seq, limit),
    ).fetchall()
    return [PendingEvent(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def apply_acks(
    conn: sqlite3.Connection, acks: Sequence[Ack], sent: Sequence[Sent], at: datetime
) -> AckOutcome:
    """Record publishes, mark acked events done, apply refund outcomes; one transaction."""
    stamp = iso(at)
    out = AckOutcome()
    conn.executemany(
        "UPDATE outbox SET attempts = attempts + ?, last_sent_at = ? WHERE event_id = ?",
        [(s.times, s.at, s.event_id) for s in sent],
    )
    before = conn.total_changes
    conn.executemany(
        "UPDATE outbox SET state = 'acked', acked_at = ?1, ack_status = ?2,"
        " last_sent_at = coalesce(last_sent_at, ?1) WHERE event_id = ?3 AND state = 'pending'",
        [(stamp, a.status, a.event_id) for a in acks],
    )
    out.newly_acked = conn.total_changes - before
    for ack in acks:
        if ack.status == "rejected":
            out.rejected.append((ack.event_id, ack.reason or ""))
        elif ack.status in FINAL_STATUSES and ack.return_id:
            _apply_outcome(conn, ack, at, out)
    return out


def _apply_outcome(conn: sqlite3.Connection, ack: Ack, at: datetime, out: AckOutcome) -> None:
    assert ack.return_id is not None
    conn.execute(
        "UPDATE outbox SET ack_status = ? WHERE event_id = ? AND ack_status = 'accepted'",
        (ack.status, ack.event_id),
    )
    cur = conn.execute(
        "UPDATE returns SET status = ?, processor_ref = ?, erp_ref = ?, decline_reason = ?,"
        " updated_at = ? WHERE return_id = ? AND status = 'pending'",
        (
            ack.status,
            ack.processor_ref,
            ack.erp_ref,
            ack.reason if ack.status == "declined" else None,
            iso(at),
            ack.return_id,
        ),
    )
    if cur.rowcount == 0:
        row = conn.execute(
            "SELECT status FROM returns WHERE return_id = ?", (ack.return_id,)
        ).fetchone()
        if row is None:
            out.conflicts.append(f"HQ sent {ack.status} for unknown refund {ack.return_id}")
        elif row[0] != ack.status:
            out.conflicts.append(
                f"HQ sent {ack.status} for refund {ack.return_id}, already {row[0]}"
            )
        return
    append_audit(
        conn,
        at=at,
        actor="hq",
        action=f"refund.{ack.status}",
        subject=ack.return_id,
        detail={
            "event_id": ack.event_id,
            "processor_ref": ack.processor_ref,
            "erp_ref": ack.erp_ref,
            "reason": ack.reason,
        },
    )
    view = refund_view(conn, ack.return_id)
    if view is not None:
        out.refunds.append(view)


def due_settlements(conn: sqlite3.Connection, sent_before: str, limit: int) -> list[PendingEvent]:
    """Refund events HQ accepted but has not settled or declined since `sent_before`.

    Re-sending one (same event_id) makes HQ ack it again with the outcome it holds, so a
    settlement ack lost while the gateway was away is recovered. Rows whose refund was
    already decided (through another event id) are closed here.
    """
    rows = conn.execute(
        "SELECT seq, event_id, envelope FROM outbox WHERE type = 'refund.requested'"
        " AND ack_status = 'accepted' AND last_sent_at < ? ORDER BY seq LIMIT ?",
        (sent_before, limit),
    ).fetchall()
    due: list[PendingEvent] = []
    for seq, event_id, envelope in rows:
        return_id = json.loads(envelope).get("data", {}).get("return_id")
        status = conn.execute(
            "SELECT status FROM returns WHERE return_id = ?", (return_id,)
        ).fetchone()
        if status is None or status[0] != "pending":
            conn.execute(
                "UPDATE outbox SET ack_status = ? WHERE seq = ?",
                (status[0] if status else "settled", seq),
            )
            continue
        due.append(PendingEvent(int(seq), str(event_id), str(envelope)))
    return due


def prune_acked(conn: sqlite3.Connection, acked_before: str, limit: int) -> int:
    """Delete up to `limit` acked events older than the cutoff; never a pending one, nor a
    refund whose outcome HQ still owes."""
    cur = conn.execute(
        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE state = 'acked'"
        " AND acked_at < ? AND NOT (type = 'refund.requested' AND ack_status = 'accepted')"
        " LIMIT ?)",
        (acked_before, limit),
    )
    return int(cur.rowcount)


def replay_from(conn: sqlite3.Connection, from_seq: int) -> tuple[int, int | None]:
    """Make acked events from `from_seq` on pending again (HQ lost them); returns how many
    and the first seq still held (older ones were pruned)."""
    cur = conn.execute(
        "UPDATE outbox SET state = 'pending', acked_at = NULL, ack_status = NULL"
        " WHERE seq >= ? AND state = 'acked'",
        (from_seq,),
    )
    (first,) = conn.execute("SELECT min(seq) FROM outbox").fetchone()
    return int(cur.rowcount), first


def next_bd_seq(conn: sqlite3.Connection) -> int:
    """The next birth/death number; it survives restarts so HQ can order sessions."""
    (value,) = conn.execute(
        "UPDATE counters SET value = value + 1 WHERE name = 'hq_bd_seq' RETURNING value"
    ).fetchone()
    return int(value)
