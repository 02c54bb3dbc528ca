"""What the HQ service records: each event once, per-gateway seq tracking, refunds, orders.

Every batch of incoming events is one IMMEDIATE transaction (fsynced) and acks go out only
after it committed, so an acked event is durably held here. Duplicates are recognised by
`event_id` and acked again with what HQ knows (for a refund: its outcome, if decided).
Each event is checked in one compiled pass over its bytes and stored as received; each
gateway's seq tracking is read once and written once per batch.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from edge.contract.field_paths import first_error
from edge.contract.ids import is_ulid
from edge.contract.timefmt import iso, utcnow
from edge.contract.wire_envelope import WireEnvelope, check_envelope
from edge.hq.schema import open_store
from edge.sqlite_tx import immediate

T = TypeVar("T")

_DATETIME = TypeAdapter(datetime)  # occurred_at as stored: pydantic's JSON form of the time


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


@dataclass
class _Stream:
    """One gateway's seq tracking while a batch is recorded, written back once."""

    through: int  # every seq up to here is held
    high: int
    gap_since: str | None
    held_beyond: bool  # events past `through` were held before this batch
    received: int = 0
    duplicates: int = 0
    new_seqs: set[int] = field(default_factory=set)


def ingest(conn: sqlite3.Connection, items: Iterable[Incoming]) -> IngestResult:
    """Record a batch of events; returns the acks to send once this transaction commits."""
    out = IngestResult()
    now = iso(utcnow())
    streams: dict[tuple[str, str], _Stream] = {}
    for item in items:
        envelope = _valid(item, out)
        if envelope is None:
            continue
        key = (item.store_id, item.gateway_id)  # the envelope's own, checked by _valid
        stream = streams.get(key)
        if stream is None:
            stream = streams[key] = _load_stream(conn, key)
        event_id, seq = envelope["event_id"], envelope["seq"]
        cur = conn.execute(
            "INSERT OR IGNORE INTO events (event_id, store_id, gateway_id, seq, type,"
            " occurred_at, received_at, envelope) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event_id,
                item.store_id,
                item.gateway_id,
                seq,
                envelope["type"],
                _DATETIME.dump_python(envelope["occurred_at"], mode="json"),
                now,
                item.payload.decode(),
            ),
        )
        if cur.rowcount == 0:
            out.duplicates += 1
            stream.duplicates += 1
            out.acks.append(_duplicate_ack(conn, item, envelope))
            continue
        out.new_events += 1
        if _advance(conn, key, stream, seq, now):
            out.gaps_opened.append(f"{item.store_id}/{item.gateway_id}")
        if envelope["type"] == "refund.requested":
            return_id = _record_refund(conn, item, envelope, now)
            if return_id is not None:
                out.new_refunds.append(return_id)
        out.acks.append(_ack(item, event_id, "accepted"))
    for key, stream in streams.items():
        _save_stream(conn, key, stream, now)
    return out


def _valid(item: Incoming, out: IngestResult) -> WireEnvelope | None:
    """The envelope, or None after queueing a `rejected` ack (or noting it as malformed)."""
    try:
        envelope = check_envelope(item.payload)
    except ValidationError as exc:
        if exc.errors(include_input=False, include_url=False)[0]["type"] == "json_invalid":
            out.malformed.append(f"{item.store_id}/{item.gateway_id}: not JSON")
            return None
        reason = f"envelope invalid: {first_error(exc, '(envelope)')[:200]}"
        out.malformed.append(f"{item.store_id}/{item.gateway_id}: {reason}")
        event_id = _event_id_of(item.payload)
        if event_id is not None:
            out.acks.append(_ack(item, event_id, "rejected", reason=reason))
        return None
    if (envelope["store_id"], envelope["gateway_id"]) != (item.store_id, item.gateway_id):
        reason = "the envelope names another store or gateway than its topic"
        out.malformed.append(f"{item.store_id}/{item.gateway_id}: {reason}")
        out.acks.append(_ack(item, envelope["event_id"], "rejected", reason=reason))
        return None
    return envelope


def _event_id_of(payload: bytes) -> str | None:
    """The event id of an envelope that failed the schema, if it names a valid one."""
    try:
        data = json.loads(payload)
    except ValueError:  # JSON pydantic-core read but the standard library does not
        return None
    event_id = data.get("event_id") if isinstance(data, dict) else None
    return event_id if isinstance(event_id, str) and is_ulid(event_id) else None


def _duplicate_ack(conn: sqlite3.Connection, item: Incoming, envelope: WireEnvelope) -> AckOut:
    """A duplicate is acked again; a decided refund's ack carries its outcome again."""
    if envelope["type"] == "refund.requested":
        row = conn.execute(
            "SELECT * FROM refunds WHERE event_id = ? AND status != 'received'",
            (envelope["event_id"],),
        ).fetchone()
        if row is not None:
            return decision_ack(row)
    return _ack(item, envelope["event_id"], "accepted")


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


def _load_stream(conn: sqlite3.Connection, key: tuple[str, str]) -> _Stream:
    conn.execute("INSERT OR IGNORE INTO streams (store_id, gateway_id) VALUES (?, ?)", key)
    through, high, gap_since = conn.execute(
        "SELECT contiguous_through, high_seq, gap_since FROM streams"
        " WHERE store_id = ? AND gateway_id = ?",
        key,
    ).fetchone()
    return _Stream(int(through), int(high), gap_since, held_beyond=int(high) > int(through))


def _advance(
    conn: sqlite3.Connection, key: tuple[str, str], stream: _Stream, seq: int, now: str
) -> bool:
    """Count a newly held seq and advance the contiguous seq; True when it opened a gap.

    Held seqs past `through` are those of this batch, and, only when the stream had a gap
    before it, older ones the store is asked about.
    """
    stream.received += 1
    stream.new_seqs.add(seq)
    stream.high = max(stream.high, seq)
    if seq == stream.through + 1:
        through = seq
        while through + 1 in stream.new_seqs or (
            stream.held_beyond
            and conn.execute(
                "SELECT 1 FROM events WHERE store_id = ? AND gateway_id = ? AND seq = ?",
                (*key, through + 1),
            ).fetchone()
        ):
            through += 1
        stream.through = through
    gap = stream.high > stream.through
    opened = gap and stream.gap_since is None
    stream.gap_since = (stream.gap_since or now) if gap else None
    return opened


def _save_stream(conn: sqlite3.Connection, key: tuple[str, str], stream: _Stream, now: str) -> None:
    conn.execute(
        "UPDATE streams SET contiguous_through = ?, high_seq = ?, received = received + ?,"
        " duplicates = duplicates + ?, gap_since = ?,"
        " last_event_at = CASE WHEN ? > 0 THEN ? ELSE last_event_at END"
        " WHERE store_id = ? AND gateway_id = ?",
        (
            stream.through,
            stream.high,
            stream.received,
            stream.duplicates,
            stream.gap_since,
            stream.received,
            now,
            *key,
        ),
    )


def _record_refund(
    conn: sqlite3.Connection, item: Incoming, envelope: WireEnvelope, now: str
) -> str | None:
    data = envelope["data"]
    return_id = data.get("return_id")
    if not isinstance(return_id, str):
        return None
    cur = conn.execute(
        "INSERT OR IGNORE INTO refunds (return_id, event_id, store_id, gateway_id, currency,"
        " total, request, status, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'received', ?)",
        (
            return_id,
            envelope["event_id"],
            item.store_id,
            item.gateway_id,
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
