"""The transactional outbox: events written in the same transaction as the facts they report.

`seq` comes from a counter row, so it is gapless per gateway even after acked events are
pruned, and a rolled-back job gives its number back.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge.domain.envelope import EventEnvelope, EventType
from edge.domain.ids import new_ulid
from edge.ledger.timefmt import iso


@dataclass(frozen=True)
class Origin:
    store_id: str
    gateway_id: str


def append_event(
    conn: sqlite3.Connection, origin: Origin, type_: EventType, data: dict[str, Any], at: datetime
) -> EventEnvelope:
    """Validate and stage one event inside the caller's transaction."""
    (seq,) = conn.execute(
        "UPDATE counters SET value = value + 1 WHERE name = 'outbox_seq' RETURNING value"
    ).fetchone()
    envelope = EventEnvelope.model_validate(
        {
            "event_id": new_ulid(at),
            "type": type_,
            "schema": 1,
            "store_id": origin.store_id,
            "gateway_id": origin.gateway_id,
            "seq": seq,
            "occurred_at": at,
            "data": data,
        }
    )
    conn.execute(
        "INSERT INTO outbox (seq, event_id, type, occurred_at, envelope) VALUES (?, ?, ?, ?, ?)",
        (
            seq,
            envelope.event_id,
            type_,
            iso(at),
            json.dumps(envelope.wire(), separators=(",", ":"), sort_keys=True),
        ),
    )
    return envelope


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    oldest_pending_at: str | None
    last_seq: int
    last_acked_at: str | None


def stats(conn: sqlite3.Connection) -> OutboxStats:
    pending, oldest = conn.execute(
        "SELECT count(*), min(occurred_at) FROM outbox WHERE state = 'pending'"
    ).fetchone()
    (last_seq,) = conn.execute("SELECT value FROM counters WHERE name = 'outbox_seq'").fetchone()
    (last_ack,) = conn.execute("SELECT max(acked_at) FROM outbox").fetchone()
    return OutboxStats(int(pending), oldest, int(last_seq), last_ack)
