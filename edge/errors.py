"""One exception root per boundary, so callers catch our failures and nothing else.

Library errors (sqlite3, aiohttp, paho, evdev) are translated where they enter the
gateway; code above a boundary only ever sees these types.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(EdgeError):
    """The configuration cannot be used; each entry names the key at fault."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {msg}" for key, msg in problems))


class StorageError(EdgeError):
    """The ledger could not durably write or read (disk full, I/O error, locked)."""


class OutboxError(StorageError):
    """The outbox could not hand out or settle an event."""


class MqttLinkError(EdgeError):
    """The HQ link failed in a way its caller must handle."""


class DeviceLostError(EdgeError):
    """An input device went away; readers treat this as an event, not a crash."""
