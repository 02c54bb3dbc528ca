"""One gateway per data directory: an exclusive `flock` on `<data_dir>/gateway.lock`.

The daemon holds it from start to exit, so a second daemon on the same directory refuses
to start, and `edge-gateway restore` refuses to replace the ledger under a running one.
The kernel drops the lock when the holder exits however it ends (even SIGKILL or a power
cut), so there is never a stale lock to clean up; the file holds the holder's pid only to
name it in the message. The file itself stays: removing it would let two processes lock
two different files of the same name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from edge.errors import EdgeError

LOCK_NAME = "gateway.lock"


class DataDirBusy(EdgeError):
    """Another process (a running gateway, or a restore) holds the data directory."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        self.data_dir = data_dir
        self.holder = holder
        who = f"pid {holder}" if holder else "another process"
        super().__init__(f"{data_dir} is in use by a running edge-gateway ({who})")


class DataDirLock:
    """`with DataDirLock(data_dir):` holds the directory exclusively, or raises DataDirBusy."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (a no-op while this object holds it); DataDirBusy if taken."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirBusy(self.path.parent, holder) from None
        except OSError:
            os.close(fd)
            raise
        if os.geteuid() == 0:  # a restore run as root: the gateway's user must open it later
            owner = self.path.parent.stat()
            os.fchown(fd, owner.st_uid, owner.st_gid)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor drops the lock

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def holder_of(data_dir: Path) -> str | None:
    """The pid (as written) of the process holding the directory, "" if it did not say,
    None if nobody holds it. Takes and drops a shared lock to find out; creates nothing."""
    path = data_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
