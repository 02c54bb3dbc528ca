"""The ledger's one write path, with group commit.

All writes go through one connection and one queue. Each request's work is a plain
function run on the connection's thread inside its own SAVEPOINT; the jobs that queued
up while the previous commit was being fsynced share the next transaction, so many
concurrent refunds cost one fsync, and a job that fails rolls back alone. A disk that
refuses the commit (full, failing, read-only) fails the whole batch, since SQLite rolls the
transaction back; the writer reports that to the ledger's `StorageHealth`
(edge/ledger/storage.py) and the next commit that writes reports the disk well again.

The connection's thread takes the jobs from the queue itself and goes on to the next
batch as soon as a commit returns: the event loop only queues jobs and hands out the
results, so a busy loop never keeps the writer waiting between two commits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from edge.domain.errors import DomainError
from edge.errors import EdgeError, StorageError, StorageWriteError
from edge.ledger.db import ThreadConnection, apply_migrations
from edge.ledger.storage import StorageHealth, is_storage_fault

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], T]
_Job = tuple[WriteFn[Any], "asyncio.Future[Any]"]
_Outcome = tuple[bool, Any]


class LedgerWriter:
    """Owns the write connection, and the loop on its thread that commits jobs in groups."""

    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = 256,
        queue_size: int = 10_000,
        storage: StorageHealth | None = None,
    ) -> None:
        """`storage`: where a write the disk refused, and the next one it took, are told."""
        self._path = path
        self.storage = storage or StorageHealth()
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._queue_size = queue_size
        self._queued = 0  # jobs handed to the thread whose results are not delivered yet
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._conn: ThreadConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0
        self.jobs = 0
        self.failed_commits = 0

    async def __aenter__(self) -> LedgerWriter:
        self._conn = await ThreadConnection(
            self._path, read_only=False, name="ledger-writer"
        ).open()
        try:
            await self._conn.run(apply_migrations)
        except sqlite3.Error as exc:
            await self._conn.close()
            raise StorageError(f"cannot migrate {self._path}: {exc}") from exc
        self._task = asyncio.create_task(self._run(self._conn), name="ledger-writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def alive(self) -> bool:
        """Whether the writer's loop still takes jobs on its thread. It ends when closed, or
        when a bug escapes it: then no write could ever complete (the watchdog's concern)."""
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        """Commit what is queued, then close. Safe to call more than once."""
        if self._closing:
            if self._task is not None:
                await _ended(self._task)
            return
        self._closing = True
        if self._task is not None:
            self._jobs.put(None)
            await _ended(self._task)
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def write(self, fn: WriteFn[T]) -> T:
        """Run `fn` in a transaction; returns once its effects are durable on disk."""
        if self._closing or self._task is None:
            raise StorageError("the ledger is closed")
        if self._task.done():
            raise StorageError("the ledger writer has stopped; the gateway must be restarted")
        loop = asyncio.get_running_loop()
        while self._queued >= self._queue_size:  # the disk is far behind: wait for room
            room = loop.create_future()
            self._waiting.append(room)
            await room
            if self._closing:
                raise StorageError("the ledger is closed")
        self._queued += 1
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, fut))
        return await fut

    async def _run(self, conn: ThreadConnection) -> None:
        loop = asyncio.get_running_loop()
        try:
            await conn.run(lambda c: self._serve(c, loop))
        except asyncio.CancelledError:
            self._jobs.put(None)  # the thread ends after what it has taken
            raise

    def _serve(self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        """The connection thread's loop: a batch of whatever is queued, one commit, repeat;
        returns once the queue's end has been reached and everything before it committed."""
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                outcomes, wrote = self._commit(conn, batch)
            except BaseException as exc:  # a bug: fail the batch's callers, then stop
                failed = [(False, exc)] * len(batch)
                loop.call_soon_threadsafe(self._deliver, batch, failed, False)
                raise
            loop.call_soon_threadsafe(self._deliver, batch, outcomes, wrote)
            if stop:
                return

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> tuple[list[_Outcome], bool]:
        """Each job's outcome, and whether the commit wrote anything (a commit that changed
        no row proves nothing about the disk)."""
        changes = conn.total_changes
        wrote = False
        try:
            outcomes = _run_batch(conn, [fn for fn, _ in batch])
            self.commits += 1
            wrote = conn.total_changes > changes and any(ok for ok, _ in outcomes)
        except sqlite3.Error as exc:
            self.failed_commits += 1
            log.error("ledger commit of %d job(s) failed: %s", len(batch), exc)
            failure = _storage_error("the ledger could not commit", exc)
            outcomes = [(False, failure)] * len(batch)
        self.jobs += len(batch)
        return outcomes, wrote

    def _deliver(self, batch: list[_Job], outcomes: list[_Outcome], wrote: bool) -> None:
        """On the event loop: the storage state, each caller's result or error, and room for
        waiting writers. The state comes first, so a caller told 503 finds /readyz agreeing."""
        refused = next(
            (value for ok, value in outcomes if not ok and isinstance(value, StorageWriteError)),
            None,
        )
        if refused is not None:
            self.storage.failed(str(refused))
        elif wrote:
            self.storage.recovered("a ledger write committed")
        self._queued -= len(batch)
        while self._waiting:
            room = self._waiting.popleft()
            if not room.done():  # its writer was cancelled
                room.set_result(None)
        for (_, fut), (ok, value) in zip(batch, outcomes, strict=True):
            if fut.done():  # the caller was cancelled
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)


async def _ended(task: asyncio.Task[None]) -> None:
    """Wait for the writer's loop to end. One that a bug already ended is logged, not raised
    again, so that closing still closes the connection."""
    if not task.done():
        await asyncio.shield(task)
    elif not task.cancelled() and (failure := task.exception()) is not None:
        log.error("the ledger writer had stopped", exc_info=failure)


def _run_batch(conn: sqlite3.Connection, fns: list[WriteFn[Any]]) -> list[_Outcome]:
    """One transaction; each job in its own savepoint. Runs on the connection thread."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcomes: list[_Outcome] = []
        for fn in fns:
            conn.execute("SAVEPOINT job")
            try:
                result = fn(conn)
            except Exception as exc:  # the job fails alone, its savepoint undone
                if isinstance(exc, sqlite3.Error) and not conn.in_transaction:
                    raise  # SQLite rolled it all back (a full or failing disk): none is written
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((False, _translate(exc)))
                continue
            conn.execute("RELEASE job")
            outcomes.append((True, result))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _translate(exc: Exception) -> Exception:
    """Refusals pass through; SQLite faults become StorageError; bugs stay as they are."""
    if isinstance(exc, DomainError | EdgeError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return _storage_error("the ledger refused a write", exc)
    log.error("ledger job failed", exc_info=exc)
    return exc


def _storage_error(what: str, exc: sqlite3.Error) -> StorageError:
    """A disk that refuses the write (full, failing, read-only) is `StorageWriteError`, which
    the storage health watches; any other SQLite failure a plain `StorageError`."""
    kind = StorageWriteError if is_storage_fault(exc) else StorageError
    return kind(f"{what}: {exc}")
