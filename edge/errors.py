"""The daemon's one exception root, with one branch per boundary, so callers catch our
failures and nothing else.

Library errors (sqlite3, aiohttp, paho, evdev, pyscard, biip) are translated where they
enter the gateway; code above a boundary only ever sees these types. The rules themselves
refuse with `edge.domain.errors.DomainError`, the pure domain's own root, which imports
nothing of the daemon. Anything else that escapes is a bug: the supervisors
(`edge.supervise`, the event bus, the LAN API's problem middleware) log it, count it and
keep the gateway running.
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


class StorageWriteError(StorageError):
    """The disk cannot take a write (full, read-only or failing): nothing was written, and
    the ledger reports storage as failed until a write or a probe succeeds again."""


class OutboxError(StorageError):
    """The outbox could not hand out or settle an event."""


class ApiError(EdgeError):
    """The LAN API refuses a request: answered as a problem document (or, at the token
    endpoint, as an OAuth error), never as a crash."""


class HqLinkError(EdgeError):
    """Root of the MQTT link between gateways and HQ, at either end."""


class MqttLinkError(HqLinkError):
    """The HQ link failed in a way its caller must handle."""


class DeviceError(EdgeError):
    """Root of the device readers: a scanner or NFC reader that cannot be used."""


class DeviceLostError(DeviceError):
    """An input device went away; readers treat this as an event, not a crash."""
