"""The lane router: where device input becomes lane events on the bus.

It is the readers' sink. A scan is parsed, checked against the lane's duplicate window and
published as a ScanEvent at once (the latency-critical path has no queue). A tag that may be
a manager's badge needs an async look-up, so such taps wait in a small bounded queue that
`run()` works through: in `approvals` mode every tap is a badge; in `auto` mode a manager's
badge becomes a grant and any other tag a scan, decided before anything about the tag reaches
the bus, so a badge's UID never reaches a register. In `tags` mode every tap is a scan at
once. A tag scan has symbology `nfc`, the UID as data, and the UID and NDEF records parsed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edge.bus import EventBus
from edge.devices.sink import DeviceRef, DeviceState, TagRead, TapMode
from edge.events import DeviceStatusEvent, ScanEvent
from edge.lanes.approvals import BadgeApprovals
from edge.lanes.duplicates import DuplicateWindow
from edge.lanes.settings import LanesSettings

if TYPE_CHECKING:
    from edge.scan.payload import ParsedScan

log = logging.getLogger(__name__)

TAP_QUEUE = 32


@dataclass(frozen=True)
class DeviceHealth:
    """The last known state of one device, for /readyz and the status page."""

    kind: str
    lane: str
    state: DeviceState
    detail: str
    since: datetime


def _tag_scan(tag: TagRead) -> ParsedScan:
    """A tag as the contract's NFC scan: the UID is the data, whatever the tag holds."""
    # The payload parser (and biip under it) is imported by the first scan or tap, so a
    # gateway with no device configured never loads it.
    from edge.scan.payload import ParsedScan  # noqa: PLC0415

    ndef = [dict(record) for record in tag.records]
    return ParsedScan("nfc", tag.uid, {"uid": tag.uid, "ndef": ndef})


class LaneRouter:
    """Routes scans, taps and device states of every reader to the event bus."""

    def __init__(
        self,
        bus: EventBus,
        settings: LanesSettings,
        badges: BadgeApprovals | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._badges = badges
        self._clock = clock
        self._duplicates = DuplicateWindow(settings)
        self._taps: asyncio.Queue[tuple[DeviceRef, TagRead, TapMode]] = asyncio.Queue(
            maxsize=TAP_QUEUE
        )
        self.health: dict[str, DeviceHealth] = {}
        self.lane_scans: Counter[str] = Counter()  # per lane, for /metrics and the status page
        self.last_scan_at: dict[str, datetime] = {}
        self.repeats = 0
        self.dropped_taps = 0

    def scan(self, device: DeviceRef, payload: str) -> None:
        from edge.scan.payload import parse_payload  # noqa: PLC0415 - see _tag_scan

        self._publish_scan(device, parse_payload(payload))

    def _publish_scan(self, device: DeviceRef, scan: ParsedScan) -> None:
        if not scan.data:
            return
        if self._duplicates.is_repeat(device.lane, scan.data, self._clock()):
            self.repeats += 1
            return
        at = datetime.now(UTC)
        self.lane_scans[device.lane] += 1
        self.last_scan_at[device.lane] = at
        self._bus.publish(
            ScanEvent(
                lane=device.lane,
                device=device.id,
                symbology=scan.symbology,
                data=scan.data,
                parsed=scan.parsed,
                at=at,
            )
        )

    def tap(self, device: DeviceRef, tag: TagRead, mode: TapMode) -> None:
        if mode == "tags" or (mode == "auto" and self._badges is None):
            self._publish_scan(device, _tag_scan(tag))
            return
        if self._badges is None:  # a badge-only reader, and no managers to know
            return
        try:
            self._taps.put_nowait((device, tag, mode))
        except asyncio.QueueFull:
            self.dropped_taps += 1
            log.warning("%s: tap dropped, too many waiting for the badge look-up", device.id)

    def status(self, device: DeviceRef, state: DeviceState, detail: str = "") -> None:
        previous = self.health.get(device.id)
        if previous is not None and (previous.state, previous.detail) == (state, detail):
            return
        now = datetime.now(UTC)
        self.health[device.id] = DeviceHealth(device.kind, device.lane, state, detail, now)
        self._bus.publish(
            DeviceStatusEvent(
                lane=device.lane,
                device=device.id,
                kind=device.kind,
                state=state,
                detail=detail,
                at=now,
            )
        )

    async def ready_check(self) -> tuple[bool, dict[str, Any]]:
        """Device states for /readyz; an unplugged scanner does not make the gateway unready."""
        devices = {
            device: {
                "kind": h.kind,
                "lane": h.lane,
                "state": h.state,
                "detail": h.detail,
                "since": h.since.isoformat(),
            }
            for device, h in sorted(self.health.items())
        }
        return True, {"devices": devices}

    async def run(self) -> None:
        """Handle taps that may be badges one at a time (look-ups hit the ledger)."""
        if self._badges is None:
            return
        while True:
            device, tag, mode = await self._taps.get()
            if mode == "approvals":
                await self._badges.tap(device.lane, device.id, tag.uid)
            elif not await self._badges.claim(device.lane, device.id, tag.uid):
                self._publish_scan(device, _tag_scan(tag))
