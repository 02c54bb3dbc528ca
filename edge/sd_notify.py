"""systemd's notify protocol (sd_notify(3)): READY=1, STATUS= lines and WATCHDOG=1 pings.

With `Type=notify` systemd waits for READY before starting units that depend on the
gateway, and tests use the same socket to learn when the daemon is up without polling.
With `WatchdogSec=` systemd passes the interval in `WATCHDOG_USEC` (and the pid it is
meant for in `WATCHDOG_PID`) and restarts the service when the pings stop; what decides
whether to ping is `edge.heartbeat`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


# How often a heartbeat refreshes its status line when no watchdog asks for more often.
STATUS_EVERY_S = 15.0


class Notifier:
    def __init__(self, socket_path: str | None, watchdog_usec: int = 0) -> None:
        self._path = socket_path
        self._watchdog_usec = watchdog_usec

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, pid: int | None = None
    ) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(
            env.get("NOTIFY_SOCKET"), watchdog_usec(env, os.getpid() if pid is None else pid)
        )

    @property
    def enabled(self) -> bool:
        return bool(self._path)

    @property
    def watchdog_interval_s(self) -> float | None:
        """The service's watchdog timeout in seconds, or None when systemd expects no pings."""
        if not self._path or self._watchdog_usec <= 0:
            return None
        return self._watchdog_usec / 1_000_000

    def beat_period_s(self, status_every_s: float = STATUS_EVERY_S) -> float:
        """How often a heartbeat sends its status line: every `status_every_s`, and at least
        every half watchdog interval, as sd_watchdog_enabled(3) advises."""
        watchdog_s = self.watchdog_interval_s
        return status_every_s if watchdog_s is None else min(status_every_s, watchdog_s / 2)

    def notify(self, message: str) -> None:
        """Send one notification; a missing or gone socket is not an error for the daemon."""
        if not self._path:
            return
        address = "\0" + self._path[1:] if self._path.startswith("@") else self._path
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall(message.encode())
        except OSError:
            return

    def ready(self, status: str, *, watchdog: bool = False) -> None:
        """Startup is complete; with the first STATUS= line (and watchdog ping)."""
        self.notify(f"READY=1\n{_status(status, watchdog)}")

    def status(self, status: str, *, watchdog: bool = False) -> None:
        """A new STATUS= line, with a watchdog ping in the same datagram when `watchdog`."""
        self.notify(_status(status, watchdog))

    def stopping(self) -> None:
        self.notify("STOPPING=1")


def watchdog_usec(environ: Mapping[str, str], pid: int) -> int:
    """The watchdog interval as sd_watchdog_enabled(3) reads it: `WATCHDOG_USEC` when set to
    a positive integer, and only for the process `WATCHDOG_PID` names when that is set (so a
    child that inherited the variables does not ping for its parent); else 0 (off)."""
    raw = environ.get("WATCHDOG_USEC")
    if not raw:
        return 0
    try:
        usec = int(raw)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number of microseconds; no watchdog pings", raw)
        return 0
    if usec <= 0:
        return 0
    if target := environ.get("WATCHDOG_PID"):
        try:
            meant_for = int(target)
        except ValueError:
            log.warning("WATCHDOG_PID=%r is not a pid; no watchdog pings", target)
            return 0
        if meant_for != pid:
            return 0
    return usec


def _status(text: str, watchdog: bool) -> str:
    """`STATUS=` as one line (a newline would start another field), after `WATCHDOG=1`."""
    line = "STATUS=" + " ".join(text.split())
    return f"WATCHDOG=1\n{line}" if watchdog else line
