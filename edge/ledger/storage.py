"""Whether the disk can take the ledger's writes, and how the gateway finds out it can again.

SQLite answers a write the disk cannot take (`SQLITE_FULL` when the filesystem is full,
`SQLITE_IOERR` when it fails, `SQLITE_READONLY` when it was remounted read-only) by rolling
the whole transaction back: the refund, its outbox events, its audit record and its
idempotency key are all absent, never half there. The writer marks storage as failed here;
refunds and sales get 503 `storage-unavailable`, `/readyz` turns 503 and an alert is raised.

Nothing has to be restarted when space returns: the next write that commits marks storage
as writable again, and while it is failed a probe writes a small file beside the ledger
every `storage.probe_interval_s`, so the alert clears even when no register is trying.
The probe runs only while storage is failed, so a healthy SD card is not written to for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from edge.contract.timefmt import iso, utcnow

log = logging.getLogger(__name__)

# Result codes (the primary code, the low byte of an extended one) that mean the disk
# itself refused: full, failing, or read-only.
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
STORAGE_FAULTS = frozenset({_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL})

PROBE_NAME = ".storage-probe"
PROBE_BYTES = 256 * 1024  # about what one refund's pages need in the write-ahead log


def is_storage_fault(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because of the disk (not a constraint, a lock or a bug)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in STORAGE_FAULTS


class StorageHealth:
    """The ledger's view of its disk: writable, or failed since when and why.

    Updated on the event loop only (by the writer as it hands out results, and by the
    probe), read by `/readyz`, the status page, metrics and the storage alert.
    """

    def __init__(self) -> None:
        self.failed_since: datetime | None = None
        self.detail = ""
        self._changed = asyncio.Event()

    @property
    def ok(self) -> bool:
        return self.failed_since is None

    def describe(self) -> str:
        """One line for /readyz, logs and the alert: what failed, since when."""
        if self.failed_since is None:
            return "writable"
        return f"the disk cannot take a write since {iso(self.failed_since)}: {self.detail}"

    def failed(self, detail: str) -> None:
        """A write was refused by the disk."""
        self.detail = detail
        if self.failed_since is None:
            self.failed_since = utcnow()
            log.error("storage failed: %s; refunds get 503 until it is writable", detail)
            self._changed.set()

    def recovered(self, how: str) -> None:
        """A write (or the probe) succeeded again."""
        if self.failed_since is None:
            return
        log.warning(
            "storage writable again (%s), after failing since %s", how, iso(self.failed_since)
        )
        self.failed_since = None
        self.detail = ""
        self._changed.set()

    async def wait_changed(self, within_s: float | None) -> None:
        """Until the state changes, or `within_s` seconds (None: no limit) pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._changed.wait()
        self._changed.clear()


def probe(folder: Path, size: int = PROBE_BYTES) -> str | None:
    """Write, fsync and remove a small file in `folder` (blocking); None when the disk took
    it, else what went wrong."""
    path = folder / PROBE_NAME
    block = b"\0" * 65536
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            left = size
            while left > 0:
                left -= os.write(fd, block[: min(left, len(block))])
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return f"a test write in {folder} failed: {exc.strerror or exc}"
    finally:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
    return None


StorageReport = Callable[[str | None], None]


async def watch(
    health: StorageHealth, folder: Path, interval_s: float, report: StorageReport
) -> None:
    """Tell `report` what is wrong (a line) or that all is well again (None) at each change;
    while storage is failed, probe it every `interval_s` seconds. Runs until cancelled."""
    reported: str | None = None
    while True:
        if not health.ok:
            problem = await asyncio.to_thread(probe, folder)
            if problem is None:
                health.recovered(f"a test write in {folder} succeeded")
            else:
                health.failed(problem)
        now = None if health.ok else health.describe()
        if now != reported:
            report(now)
            reported = now
        await health.wait_changed(None if health.ok else interval_s)
