"""What the HQ service records: each event once, per-gateway seq tracking, refunds, orders.

Every batch of incoming events is one transaction, and acks go out only after it
committed, so an acked event is durably held here. The database, not the instance, decides
what is new: events and refunds are inserted with ON CONFLICT DO NOTHING on their keys
(`event_id`, `return_id`); settling a refund once is `edge.hq.settlement`'s.
Each gateway's seq tracking is locked (`SELECT ... FOR UPDATE`; SQLite has one writer),
read once and written once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from alembic.util import CommandError
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.engine import URL, RowMapping
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from edge.contract.field_paths import first_error
from edge.contract.ids import is_ulid
from edge.contract.timefmt import iso, utcnow
from edge.contract.wire_envelope import WireEnvelope, check_envelope
from edge.errors import StorageError
from edge.hq.database import create_engines, database_url, is_sqlite, migrate
from edge.hq.tables import events, insert, orders, refunds, streams

T = TypeVar("T")
Query = Callable[[AsyncConnection], Awaitable[T]]

_DATETIME = TypeAdapter(datetime)  # occurred_at as stored: pydantic's JSON form of the time


class HqStoreError(StorageError):
    """The HQ store could not read or write (database unreachable, locked, full)."""


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
    """The store's engines; each call is one transaction. On SQLite one write at a time."""

    def __init__(self, url: str | Path | URL) -> None:
        self.url = url if isinstance(url, URL) else database_url(url)
        self._writer: AsyncEngine | None = None
        self._reader: AsyncEngine | None = None
        self._write_lock = asyncio.Lock() if is_sqlite(self.url) else None

    async def open(self) -> None:
        """Connect and migrate (several instances starting together migrate in turn)."""
        self._writer, self._reader = create_engines(self.url)
        try:
            with _translated():
                await migrate(self._writer)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        engines = {e for e in (self._writer, self._reader) if e is not None}
        self._writer = self._reader = None
        for engine in engines:
            await engine.dispose()

    async def __aenter__(self) -> HqStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def write(self, fn: Query[T]) -> T:
        """Run `fn` in one write transaction (committed when it returns)."""
        engine = self._writer
        assert engine is not None, "the store is not open"
        async with self._write_lock or contextlib.nullcontext():
            with _translated():
                async with engine.begin() as conn:
                    return await fn(conn)

    async def read(self, fn: Query[T]) -> T:
        """Run `fn` in one read transaction, beside the writes."""
        engine = self._reader
        assert engine is not None, "the store is not open"
        with _translated():
            async with engine.begin() as conn:
                return await fn(conn)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Database errors leave the store as `HqStoreError`, without SQL or parameters."""
    try:
        yield
    except DBAPIError as exc:
        raise HqStoreError(f"{type(exc.orig).__name__}: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise HqStoreError(f"{type(exc).__name__}: {exc}") from exc
    except CommandError as exc:  # e.g. a store migrated by a newer version than this one
        raise HqStoreError(f"cannot migrate the HQ store: {exc}") from exc


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
    """One gateway's seq tracking while a batch is recorded, locked, written back once."""

    through: int  # every seq up to here is held
    high: int
    gap_since: str | None
    held_beyond: bool  # events past `through` were held before this batch
    received: int = 0
    duplicates: int = 0
    new_seqs: set[int] = field(default_factory=set)


async def ingest(conn: AsyncConnection, items: Iterable[Incoming]) -> IngestResult:
    """Record a batch of events; returns the acks to send once this transaction commits."""
    out = IngestResult()
    now = iso(utcnow())
    valid = [(item, env) for item in items if (env := _valid(item, out)) is not None]
    if not valid:
        return out
    keys = sorted({(item.store_id, item.gateway_id) for item, _ in valid})  # lock order
    tracked = {key: await _lock_stream(conn, key) for key in keys}
    rows: dict[str, dict[str, Any]] = {}
    for item, env in valid:
        rows.setdefault(env["event_id"], _event_row(item, env, now))
    inserted = await _insert_new(conn, list(rows.values()))
    refund_rows: list[dict[str, Any]] = []
    duplicates: list[tuple[Incoming, WireEnvelope]] = []
    for item, env in valid:
        stream = tracked[(item.store_id, item.gateway_id)]
        event_id = env["event_id"]
        if event_id not in inserted:
            out.duplicates += 1
            stream.duplicates += 1
            duplicates.append((item, env))
            continue
        inserted.discard(event_id)  # a second copy in this batch is a duplicate
        out.new_events += 1
        stream.received += 1
        stream.new_seqs.add(env["seq"])
        stream.high = max(stream.high, env["seq"])
        refund = _refund_row(item, env, now)
        if refund is not None:
            refund_rows.append(refund)
        out.acks.append(_ack(item, event_id, "accepted"))
    out.acks.extend(await _duplicate_acks(conn, duplicates))
    out.new_refunds = await _insert_refunds(conn, refund_rows)
    for key, stream in tracked.items():
        if await _advance(conn, key, stream, now):
            out.gaps_opened.append(f"{key[0]}/{key[1]}")
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


def _event_row(item: Incoming, envelope: WireEnvelope, now: str) -> dict[str, Any]:
    return {
        "event_id": envelope["event_id"],
        "store_id": item.store_id,
        "gateway_id": item.gateway_id,
        "seq": envelope["seq"],
        "type": envelope["type"],
        "occurred_at": _DATETIME.dump_python(envelope["occurred_at"], mode="json"),
        "received_at": now,
        "envelope": item.payload.decode(),
    }


async def _insert_new(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the events not held yet (one statement); returns the ids this one inserted."""
    stmt = insert(conn, events).on_conflict_do_nothing(index_elements=[events.c.event_id])
    result = await conn.execute(stmt.returning(events.c.event_id), rows)
    return set(result.scalars())


async def _duplicate_acks(
    conn: AsyncConnection, duplicates: list[tuple[Incoming, WireEnvelope]]
) -> list[AckOut]:
    """A duplicate is acked again; a decided refund's ack carries its outcome again."""
    asked = [env["event_id"] for _, env in duplicates if env["type"] == "refund.requested"]
    decided: dict[str, RowMapping] = {}
    if asked:
        query = select(refunds).where(refunds.c.event_id.in_(asked), refunds.c.status != "received")
        decided = {row["event_id"]: row for row in (await conn.execute(query)).mappings()}
    acks = []
    for item, env in duplicates:
        row = decided.get(env["event_id"])
        acks.append(_ack(item, env["event_id"], "accepted") if row is None else decision_ack(row))
    return acks


def decision_ack(row: RowMapping) -> AckOut:
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


async def _lock_stream(conn: AsyncConnection, key: tuple[str, str]) -> _Stream:
    """The gateway's seq tracking, locked until this transaction ends."""
    store_id, gateway_id = key
    await conn.execute(
        insert(conn, streams)
        .values(store_id=store_id, gateway_id=gateway_id)
        .on_conflict_do_nothing(index_elements=[streams.c.store_id, streams.c.gateway_id])
    )
    query = (
        select(streams.c.contiguous_through, streams.c.high_seq, streams.c.gap_since)
        .where(streams.c.store_id == store_id, streams.c.gateway_id == gateway_id)
        .with_for_update()
    )
    through, high, gap_since = (await conn.execute(query)).one()
    return _Stream(int(through), int(high), gap_since, held_beyond=int(high) > int(through))


async def _advance(conn: AsyncConnection, key: tuple[str, str], stream: _Stream, now: str) -> bool:
    """Advance the contiguous seq, write the tracking back; True when a gap opened.

    Beyond `through` only this batch's seqs count, unless the stream had a gap before it:
    then the store is asked which seqs it holds. Every committed event is counted in
    `high_seq` under the stream's lock, so a stream without a gap holds nothing past it.
    """
    held = stream.new_seqs
    if stream.held_beyond:
        query = select(events.c.seq).where(
            events.c.store_id == key[0],
            events.c.gateway_id == key[1],
            events.c.seq > stream.through,
            events.c.seq <= stream.high,
        )
        held = set((await conn.execute(query)).scalars())
    through = stream.through
    while through + 1 in held:
        through += 1
    gap = stream.high > through
    opened = gap and stream.gap_since is None
    await conn.execute(
        update(streams)
        .where(streams.c.store_id == key[0], streams.c.gateway_id == key[1])
        .values(
            contiguous_through=through,
            high_seq=stream.high,
            received=streams.c.received + stream.received,
            duplicates=streams.c.duplicates + stream.duplicates,
            gap_since=(stream.gap_since or now) if gap else None,
            last_event_at=now if stream.received else streams.c.last_event_at,
        )
    )
    return opened


def _refund_row(item: Incoming, envelope: WireEnvelope, now: str) -> dict[str, Any] | None:
    data = envelope["data"]
    return_id = data.get("return_id")
    if envelope["type"] != "refund.requested" or not isinstance(return_id, str):
        return None
    return {
        "return_id": return_id,
        "event_id": envelope["event_id"],
        "store_id": item.store_id,
        "gateway_id": item.gateway_id,
        "currency": str(data.get("currency", "")),
        "total": str(data.get("total", "0")),
        "request": json.dumps(data, separators=(",", ":")),
        "status": "received",
        "received_at": now,
    }


async def _insert_refunds(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[str]:
    """Insert refunds not held yet; returns their Return IDs in the order they came."""
    if not rows:
        return []
    stmt = insert(conn, refunds).on_conflict_do_nothing(index_elements=[refunds.c.return_id])
    new = set((await conn.execute(stmt.returning(refunds.c.return_id), rows)).scalars())
    return [r["return_id"] for r in rows if r["return_id"] in new]


# ---- orders ---------------------------------------------------------------------------


async def load_orders(conn: AsyncConnection, sales: Iterable[dict[str, Any]]) -> int:
    now = iso(utcnow())
    rows = [
        {"sale_id": s["sale_id"], "sale": json.dumps({**s, "channel": "online"}), "loaded_at": now}
        for s in sales
    ]
    if not rows:
        return 0
    stmt = insert(conn, orders)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[orders.c.sale_id],
            set_={"sale": stmt.excluded.sale, "loaded_at": stmt.excluded.loaded_at},
        ),
        rows,
    )
    return len(rows)


async def find_order(conn: AsyncConnection, code: str) -> dict[str, Any] | None:
    query = select(orders.c.sale).where(orders.c.sale_id == code)
    sale = (await conn.execute(query)).scalar_one_or_none()
    return None if sale is None else dict(json.loads(sale))


# ---- reports ----------------------------------------------------------------------------


async def stream_report(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Per gateway: received, duplicates, contiguous seq, and any gap."""
    query = select(streams).order_by(streams.c.store_id, streams.c.gateway_id)
    return [
        {
            **r,
            "gap": None
            if r["high_seq"] <= r["contiguous_through"]
            else {"after": r["contiguous_through"], "up_to": r["high_seq"]},
        }
        for r in (await conn.execute(query)).mappings()
    ]


async def refund_counts(conn: AsyncConnection) -> dict[str, int]:
    query = select(refunds.c.status, func.count()).group_by(refunds.c.status)
    return {str(status): int(n) for status, n in (await conn.execute(query)).all()}
