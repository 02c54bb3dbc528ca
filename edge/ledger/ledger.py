"""The ledger as the rest of the daemon sees it: one writer, one reader, typed operations.

Writes go through the single `LedgerWriter` (group commit); reads use their own WAL
connection so GETs never wait behind a commit. Each write that adds outbox events wakes
the HQ relay through the bus once it is durable.
"""

from __future__ import annotations

import sqlite3
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from edge.bus import EventBus
from edge.contract.timefmt import iso, utcnow
from edge.domain.sale import PricedSale
from edge.domain.views import RefundView, SaleView
from edge.errors import StorageError, StorageWriteError
from edge.events import OutboxAppended, RefundUpdated
from edge.ledger import people
from edge.ledger.audit import append_audit
from edge.ledger.db import ThreadConnection
from edge.ledger.outbox import Origin
from edge.ledger.refunds import (
    RefundCommand,
    RefundOutcome,
    RefundRules,
    create_refund,
    find_idempotent,
    refund_view,
)
from edge.ledger.sales import RecordedSale, record_sale, sale_view
from edge.ledger.status import LedgerStatus, ledger_status, touch
from edge.ledger.storage import StorageHealth
from edge.ledger.writer import LedgerWriter, WriteFn

T = TypeVar("T")


class Ledger:
    def __init__(self, path: Path, bus: EventBus, origin: Origin) -> None:
        self.path = path
        self.origin = origin
        self._bus = bus
        self._stack = AsyncExitStack()
        # Whether the disk takes the ledger's writes: /readyz, metrics and the storage
        # alert read it (see edge/ledger/storage.py).
        self.storage = StorageHealth()
        self._writer = LedgerWriter(path, storage=self.storage)
        self._reader: ThreadConnection | None = None

    async def __aenter__(self) -> Ledger:
        await self._stack.__aenter__()
        await self._stack.enter_async_context(self._writer)
        self._reader = await ThreadConnection(
            self.path, read_only=True, name="ledger-reader"
        ).open()
        self._stack.push_async_callback(self._reader.close)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    async def write(self, fn: WriteFn[T]) -> T:
        return await self._writer.write(fn)

    async def read(self, fn: WriteFn[T]) -> T:
        if self._reader is None:
            raise StorageError("the ledger is closed")
        try:
            return await self._reader.run(fn)
        except sqlite3.Error as exc:
            raise StorageError(f"the ledger could not be read: {exc}") from exc

    # ---- sales and refunds -------------------------------------------------------

    async def record_sale(
        self,
        sale: dict[str, Any],
        priced: PricedSale,
        fingerprint: str,
        actor: str,
        source: str = "lan",
    ) -> tuple[RecordedSale, SaleView]:
        """Record the sale (a register's, or an online order HQ sent: `source` "hq") and
        read it back as the ledger now holds it, in one job."""
        origin = self.origin

        def job(conn: sqlite3.Connection) -> tuple[RecordedSale, SaleView]:
            at = utcnow()
            result = record_sale(
                conn,
                origin=origin,
                sale=sale,
                priced=priced,
                fingerprint=fingerprint,
                actor=actor,
                at=at,
                source=source,
            )
            view = sale_view(conn, result.sale_id)
            assert view is not None
            return result, view

        result = await self.write(job)
        if result[0].last_seq is not None:
            self._bus.publish(OutboxAppended(last_seq=result[0].last_seq))
        return result

    async def create_refund(self, cmd: RefundCommand, rules: RefundRules) -> RefundOutcome:
        origin = self.origin
        outcome = await self.write(lambda conn: create_refund(conn, cmd, rules, origin, utcnow()))
        if outcome.last_seq is not None:
            self._bus.publish(OutboxAppended(last_seq=outcome.last_seq))
            self._bus.publish(RefundUpdated.of(outcome.refund, utcnow()))
        return outcome

    async def replay(self, client_id: str, key: str, fingerprint: str) -> RefundOutcome | None:
        return await self.read(lambda conn: find_idempotent(conn, client_id, key, fingerprint))

    async def sale(self, sale_id: str) -> SaleView | None:
        return await self.read(lambda conn: sale_view(conn, sale_id))

    async def refund(self, return_id: str) -> RefundView | None:
        return await self.read(lambda conn: refund_view(conn, return_id))

    # ---- principals --------------------------------------------------------------

    async def client(self, client_id: str) -> people.Client | None:
        return await self.read(lambda conn: people.get_client(conn, client_id))

    async def manager_for_badge(self, uid_hex: str) -> str | None:
        return await self.read(lambda conn: people.manager_for_badge(conn, uid_hex))

    # ---- status and housekeeping ---------------------------------------------------

    @property
    def storage_ok(self) -> bool:
        """False from a write the disk refused until a write or the storage probe succeeds."""
        return self.storage.ok

    @property
    def storage_failed_since(self) -> datetime | None:
        return self.storage.failed_since

    @property
    def writer_alive(self) -> bool:
        """Whether the single writer still takes jobs (see `LedgerWriter.alive`)."""
        return self._writer.alive

    async def ping_writer(self) -> None:
        """Returns once the writer has run a job that writes nothing: it is alive and not
        stuck. Unlike `check_writable`, a full disk does not fail it."""
        await self.write(touch)

    async def check_writable(self) -> None:
        """Raises StorageError unless a write transaction can be taken and committed now,
        and the disk took the last write that needed space (a transaction that writes
        nothing commits on a full disk too)."""
        if not self.storage.ok:
            raise StorageWriteError(self.storage.describe())
        await self.write(touch)

    async def status(self) -> LedgerStatus:
        now = utcnow()
        return await self.read(lambda conn: ledger_status(conn, now))

    async def prune_idempotency(self, keep: timedelta) -> int:
        cutoff = iso(utcnow() - keep)

        def job(conn: sqlite3.Connection) -> int:
            cur = conn.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (cutoff,))
            return int(cur.rowcount)

        return await self.write(job)

    async def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
        at: datetime = utcnow()
        await self.write(
            lambda conn: append_audit(
                conn, at=at, actor=actor, action=action, subject=subject, detail=detail
            )
        )
