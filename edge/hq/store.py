"""What the HQ service records: each event once, per-gateway seq tracking, refunds, orders.

Every batch of incoming events is one IMMEDIATE transaction (fsynced) and acks go out only
after it committed, so an acked event is durably held here. Duplicates are recognised by
`event_id` and acked again with what HQ knows (for a refund: its outcome, if decided).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from edge.domain.envelope import EventEnvelope
from edge.domain.ids import is_ulid
from edge.hq.schema import open_store
from edge.ledger.timefmt import iso, utcnow
from edge.sqlite_tx import immediate
from edge.validation import first_error

T = TypeVar("T")


@dataclass(frozen=True)
class Incoming:
    store_id: str
    gateway_id: str
    payload: bytes


@dataclass(frozen=True)
class AckOut:
    store_id: str
    gateway_id: str
    body: dict[str, Any]


@dataclass
class IngestResult:
    acks: list[AckOut] = field(default_factory=list)
    new_refunds: list[str] = field(default_factory=list)
    new_events: int = 0
    duplicates: int = 0
    malformed: list[str] = field(default_factory=list)
    gaps_opened: list[str] = field(default_factory=list)


class HqStore:
    """The store's one connection, used from one worker thread, one transaction per call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hq-store")

    def open(self) -> None:
        self._conn = open_store(self.path)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one IMMEDIATE transaction on the store's thread."""
        conn = self._conn
        assert conn is not None, "the store is not open"
        return await asyncio.get_running_loop().run_in_executor(self._pool, _in_tx, conn, fn)


def _in_tx(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    with immediate(conn):
        return fn(conn)


def _ack(item: Incoming, event_id: str, status: str, **extra: Any) -> AckOut:
    body = {
        "event_id": event_id,
        "status": status,
        "return_id": None,
        "processor_ref": None,
        "erp_ref": None,
        "reason": None,
    }
    body.update(extra)
    return AckOut(item.store_id, item.gateway_id, body)


def ingest(conn: sqlite3.Connection, items: Iterable[Incoming]) -> IngestResult:
    """Record a batch of events; returns the acks to send once this transaction commits."""
    out = IngestResult()
    now = iso(utcnow())
    for item in items:
        envelope = _valid(item, out)
        if envelope is None:
            continue
        wire = envelope.wire()
        cur = conn.execute(
            "INSERT OR IGNORE INTO events (event_id, store_id, gateway_id, seq, type,"
            " occurred_at, received_at, envelope) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                envelope.event_id,
                envelope.store_id,
                envelope.gateway_id,
                envelope.seq,
                envelope.type,
                wire["occurred_at"],
                now,
                json.dumps(wire, separators=(",", ":")),
            ),
        )
        if cur.rowcount == 0:
            out.duplicates += 1
            _count_duplicate(conn, envelope)
            out.acks.append(_duplicate_ack(conn, item, envelope))
            continue
        out.new_events += 1
        if _track_seq(conn, envelope, now):
            out.gaps_opened.append(f"{envelope.store_id}/{envelope.gateway_id}")
        if envelope.type == "refund.requested":
            return_id = _record_refund(conn, envelope, now)
            if return_id is not None:
                out.new_refunds.append(return_id)
        out.acks.append(_ack(item, envelope.event_id, "accepted"))
    return out


def _valid(item: Incoming, out: IngestResult) -> EventEnvelope | None:
    """The envelope, or None after queueing a `rejected` ack (or noting it as malformed)."""
    try:
        data = json.loads(item.payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        out.malformed.append(f"{item.store_id}/{item.gateway_id}: not JSON")
        return None
    try:
        envelope = EventEnvelope.model_validate(data)
    except ValidationError as exc:
        event_id = data.get("event_id") if isinstance(data, dict) else None
        reason = f"envelope invalid: {first_error(exc, '(envelope)')[:200]}"
        out.malformed.append(f"{item.store_id}/{item.gateway_id}: {reason}")
        if isinstance(event_id, str) and is_ulid(event_id):
            out.acks.append(_ack(item, event_id, "rejected", reason=reason))
        return None
    if (envelope.store_id, envelope.gateway_id) != (item.store_id, item.gateway_id):
        reason = "the envelope names another store or gateway than its topic"
        out.malformed.append(f"{item.store_id}/{item.gateway_id}: {reason}")
        out.acks.append(_ack(item, envelope.event_id, "rejected", reason=reason))
        return None
    return envelope


def _count_duplicate(conn: sqlite3.Connection, envelope: EventEnvelope) -> None:
    conn.execute(
        "INSERT INTO streams (store_id, gateway_id, duplicates) VALUES (?, ?, 1)"
        " ON CONFLICT (store_id, gateway_id) DO UPDATE SET duplicates = duplicates + 1",
        (envelope.store_id, envelope.gateway_id),
    )


def _duplicate_ack(conn: sqlite3.Connection, item: Incoming, envelope: EventEnvelope) -> AckOut:
    """A duplicate is acked again; a decided refund's ack carries its outcome again."""
    if envelope.type == "refund.requested":
        row = conn.execute(
            "SELECT * FROM refunds WHERE event_id = ? AND status != 'received'",
            (envelope.event_id,),
        ).fetchone()
        if row is not None:
            return decision_ack(row)
    return _ack(item, envelope.event_id, "accepted")


def decision_ack(row: sqlite3.Row) -> AckOut:
    return AckOut(
        row["store_id"],
        row["gateway_id"],
        {
            "event_id": row["event_id"],
            "status": row["status"],
            "return_id": row["return_id"],
            "processor_ref": row["processor_ref"],
            "erp_ref": row["erp_ref"],
            "reason": row["reason"],
        },
    )


def _track_seq(conn: sqlite3.Connection, envelope: EventEnvelope, now: str) -> bool:
    """Advance the gateway's contiguous seq; True when this event opened a gap."""
    key = (envelope.store_id, envelope.gateway_id)
    conn.execute("INSERT OR IGNORE INTO streams (store_id, gateway_id) VALUES (?, ?)", key)
    row = conn.execute(
        "SELECT contiguous_through, high_seq, gap_since FROM streams"
        " WHERE store_id = ? AND gateway_id = ?",
        key,
    ).fetchone()
    through, high, gap_since = int(row[0]), int(row[1]), row[2]
    high = max(high, envelope.seq)
    if envelope.seq == through + 1:
        through = envelope.seq
        while conn.execute(
            "SELECT 1 FROM events WHERE store_id = ? AND gateway_id = ? AND seq = ?",
            (*key, through + 1),
        ).fetchone():
            through += 1
    opened = high > through and gap_since is None
    conn.execute(
        "UPDATE streams SET contiguous_through = ?, high_seq = ?, received = received + 1,"
        " gap_since = ?, last_event_at = ? WHERE store_id = ? AND gateway_id = ?",
        (through, high, (gap_since or now) if high > through else None, now, *key),
    )
    return opened


def _record_refund(conn: sqlite3.Connection, envelope: EventEnvelope, now: str) -> str | None:
    data = envelope.data
    return_id = data.get("return_id")
    if not isinstance(return_id, str):
        return None
    cur = conn.execute(
        "INSERT OR IGNORE INTO refunds (return_id, event_id, store_id, gateway_id, currency,"
        " total, request, status, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'received', ?)",
        (
            return_id,
            envelope.event_id,
            envelope.store_id,
            envelope.gateway_id,
            str(data.get("currency", "")),
            str(data.get("total", "0")),
            json.dumps(data, separators=(",", ":")),
            now,
        ),
    )
    return return_id if cur.rowcount else None


# ---- refunds ------------------------------------------------------------------------


def open_refunds(conn: sqlite3.Connection) -> list[str]:
    """Refunds received but not decided (e.g. the service stopped mid-way)."""
    rows = conn.execute("SELECT return_id FROM refunds WHERE status = 'received'").fetchall()
    return [str(r[0]) for r in rows]


def refund_request(conn: sqlite3.Connection, return_id: str) -> sqlite3.Row | None:
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT * FROM refunds WHERE return_id = ?", (return_id,)
    ).fetchone()


@dataclass(frozen=True)
class Decided:
    """The processor's and ERP's outcome for one refund, to be recorded."""

    return_id: str
    status: str
    processor_ref: str | None
    erp_ref: str | None
    reason: str | None


def record_decisions(conn: sqlite3.Connection, decided: Iterable[Decided]) -> list[AckOut]:
    """Store each outcome once (the first decision wins); returns the acks that tell them."""
    now = iso(utcnow())
    acks = []
    for d in decided:
        conn.execute(
            "UPDATE refunds SET status = ?, processor_ref = ?, erp_ref = ?, reason = ?,"
            " decided_at = ?, attempts = attempts + 1 WHERE return_id = ? AND status = 'received'",
            (d.status, d.processor_ref, d.erp_ref, d.reason, now, d.return_id),
        )
        row = conn.execute("SELECT * FROM refunds WHERE return_id = ?", (d.return_id,)).fetchone()
        acks.append(decision_ack(row))
    return acks


def note_attempt(conn: sqlite3.Connection, return_id: str) -> None:
    conn.execute("UPDATE refunds SET attempts = attempts + 1 WHERE return_id = ?", (return_id,))


# ---- orders ---------------------------------------------------------------------------


def load_orders(conn: sqlite3.Connection, sales: Iterable[dict[str, Any]]) -> int:
    now = iso(utcnow())
    rows = [(s["sale_id"], json.dumps({**s, "channel": "online"}), now) for s in sales]
    conn.executemany(
        "INSERT INTO orders (sale_id, sale, loaded_at) VALUES (?, ?, ?)"
        " ON CONFLICT (sale_id) DO UPDATE SET sale = excluded.sale, loaded_at = excluded.loaded_at",
        rows,
    )
    return len(rows)


def find_order(conn: sqlite3.Connection, code: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT sale FROM orders WHERE sale_id = ?", (code,)).fetchone()
    return None if row is None else dict(json.loads(row[0]))


# ---- reports ----------------------------------------------------------------------------


def streams(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per gateway: received, duplicates, contiguous seq, and any gap."""
    return [
        {
            **dict(r),
            "gap": None
            if r["high_seq"] <= r["contiguous_through"]
            else {"after": r["contiguous_through"], "up_to": r["high_seq"]},
        }
        for r in conn.execute("SELECT * FROM streams ORDER BY store_id, gateway_id")
    ]


def refund_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        str(r[0]): int(r[1])
        for r in conn.execute("SELECT status, count(*) FROM refunds GROUP BY status")
    }
