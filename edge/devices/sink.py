"""What readers hand their input to: the lane router in the daemon, a printer in the CLI.

Readers know their device (id, kind, lane) and deliver complete payloads, NFC tag reads and
state changes. Sink methods run on the event loop and never block; thread-based readers
reach them through `call_soon_threadsafe`. A tag read goes to the sink whole, with the
reader's mode: whether a tag is a manager's badge is decided behind the sink, where the
managers are known, so readers never need the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

DeviceKind = Literal["keyboard", "serial", "nfc", "pcsc"]
DeviceState = Literal["connected", "disconnected", "error"]
TapMode = Literal["auto", "approvals", "tags"]


@dataclass(frozen=True)
class DeviceRef:
    """Which configured device input came from, and the lane it serves."""

    id: str
    kind: DeviceKind
    lane: str


@dataclass(frozen=True)
class TagRead:
    """One NFC tap: the tag's UID and its NDEF records, as the contract's `parsed.ndef` has them.

    The UID is upper-case hex without separators. Each record is `{"type": "uri", "uri"}`,
    `{"type": "text", "text"}` or `{"type": <NDEF record type>, "data": <upper-case hex>}`.
    """

    uid: str
    records: list[dict[str, str]] = field(default_factory=list)


class DeviceSink(Protocol):
    def scan(self, device: DeviceRef, payload: str) -> None:
        """A complete scan as the device delivered it (AIM prefix and GS characters kept)."""

    def tap(self, device: DeviceRef, tag: TagRead, mode: TapMode) -> None:
        """A tag presented to a reader; `mode` says whether it may be a badge, a scan, or either."""

    def status(self, device: DeviceRef, state: DeviceState, detail: str = "") -> None:
        """The device came, went or failed."""
