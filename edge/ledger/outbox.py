"""The transactional outbox: events written in the same transaction as the facts they report.

`seq` comes from a counter row, so it is gapless per gateway even after acked events are
pruned, and a rolled-back job gives its number back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.canonical import canonical_json
from edge.contract.envelope import EVENT_TYPES, EventType
from edge.contract.timefmt import iso
from edge.domain.ids import new_ulid


@dataclass(frozen=True)
class Origin:
    store_id: str
    gateway_id: str


@dataclass(frozen=True, slots=True)
class StagedEvent:
    """An event written in the caller's transaction: its gapless number and its id."""

    seq: int
    event_id: str


def append_event(
    conn: sqlite3.Connection, origin: Origin, type_: EventType, data: dict[str, Any], at: datetime
) -> StagedEvent:
    """Stage one event inside the caller's transaction (see `append_events`)."""
    (staged,) = append_events(conn, origin, ((type_, data),), at)
    return staged


def append_events(
    conn: sqlite3.Connection,
    origin: Origin,
    events: Sequence[tuple[EventType, dict[str, Any]]],
    at: datetime,
) -> list[StagedEvent]:
    """Stage events inside the caller's transaction, numbered in the order given.

    Each envelope is assembled from values made right here (a fresh ULID, the next `seq`,
    the configured origin, an aware time), so it has the `EventEnvelope` shape by
    construction and is not run through pydantic on the writer's hot path; the relay checks
    every stored envelope against `EventEnvelope` before it publishes it. The events take
    their numbers with one counter update and are written with one statement.
    """
    for type_, _ in events:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
    (last,) = conn.execute(
        "UPDATE counters SET value = value + ? WHERE name = 'outbox_seq' RETURNING value",
        (len(events),),
    ).fetchone()
    occurred_at = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    stamp = iso(at)
    staged: list[StagedEvent] = []
    rows = []
    for seq, (type_, data) in enumerate(events, start=int(last) - len(events) + 1):
        event_id = new_ulid(at)
        envelope = {
            "data": data,
            "event_id": event_id,
            "gateway_id": origin.gateway_id,
            "occurred_at": occurred_at,
            "schema": 1,
            "seq": seq,
            "store_id": origin.store_id,
            "type": type_,
        }
        rows.append((seq, event_id, type_, stamp, canonical_json(envelope)))
        staged.append(StagedEvent(seq, event_id))
    conn.executemany(
        "INSERT INTO outbox (seq, event_id, type, occurred_at, envelope) VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    return staged


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    refunds_queued: int  # pending `refund.requested` events: refunds HQ has not heard of
    oldest_pending_at: str | None
    last_seq: int
    last_acked_at: str | None


# The newest ack: the end of the partial index of acked events (migration 0002). Named,
# because without statistics SQLite would rather walk every acked event (200 ms at 200,000).
LAST_ACK = "SELECT max(acked_at) FROM outbox INDEXED BY outbox_acked_by_age WHERE state = 'acked'"


def stats(conn: sqlite3.Connection) -> OutboxStats:
    pending, refunds, oldest = conn.execute(
        "SELECT count(*), coalesce(sum(type = 'refund.requested'), 0), min(occurred_at)"
        " FROM outbox WHERE state = 'pending'"
    ).fetchone()
    (last_seq,) = conn.execute("SELECT value FROM counters WHERE name = 'outbox_seq'").fetchone()
    (last_ack,) = conn.execute(LAST_ACK).fetchone()
    return OutboxStats(int(pending), int(refunds), oldest, int(last_seq), last_ack)
