"""systemd's notify protocol (sd_notify(3)): READY=1 only once startup is complete.

With `Type=notify` systemd waits for READY before starting units that depend on the
gateway, and tests use the same socket to learn when the daemon is up without polling.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, socket_path: str | None) -> None:
        self._path = socket_path

    @classmethod
    def from_environment(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return bool(self._path)

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

    def ready(self, status: str) -> None:
        self.notify(f"READY=1\nSTATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
