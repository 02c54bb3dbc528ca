"""The lane router: where device input becomes lane events on the bus.

It is the readers' sink. A scan is parsed, checked against the lane's duplicate window and
published as a ScanEvent at once (the latency-critical path has no queue). A badge tap needs
an async lookup, so taps wait in a small bounded queue that `run()` works through. Tags read
in "tags" mode are scans with symbology `nfc`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.bus import EventBus
from edge.devices.sink import DeviceRef, DeviceState, TagRead, TapMode
from edge.events import DeviceStatusEvent, ScanEvent
from edge.lanes.approvals import BadgeApprovals
from edge.lanes.duplicates import DuplicateWindow
from edge.lanes.settings import LanesSettings
from edge.scan.payload import ParsedScan, parse_payload

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
    """A tag as a scan: its first text/URI record as data (parsed like a barcode), else the UID."""
    content = next(
        (r.get("text") or r.get("uri") for r in tag.records if r.get("text") or r.get("uri")), None
    )
    if content is None:
        return ParsedScan(
            "nfc", tag.uid, {"kind": "nfc_tag", "uid": tag.uid, "records": tag.records}
        )
    parsed = parse_payload(content)
    extra: dict[str, Any] = {"uid": tag.uid, "records": tag.records}
    return ParsedScan("nfc", parsed.data, {**parsed.parsed, **extra})


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
        self._taps: asyncio.Queue[tuple[DeviceRef, TagRead]] = asyncio.Queue(maxsize=TAP_QUEUE)
        self.health: dict[str, DeviceHealth] = {}
        self.scans = 0
        self.repeats = 0
        self.dropped_taps = 0

    def scan(self, device: DeviceRef, payload: str) -> None:
        self._publish_scan(device, parse_payload(payload))

    def _publish_scan(self, device: DeviceRef, scan: ParsedScan) -> None:
        if not scan.data:
            return
        if self._duplicates.is_repeat(device.lane, scan.data, self._clock()):
            self.repeats += 1
            return
        self.scans += 1
        self._bus.publish(
            ScanEvent(
                lane=device.lane,
                device=device.id,
                symbology=scan.symbology,
                data=scan.data,
                parsed=scan.parsed,
                at=datetime.now(UTC),
            )
        )

    def tap(self, device: DeviceRef, tag: TagRead, mode: TapMode) -> None:
        if mode == "tags" or self._badges is None:
            self._publish_scan(device, _tag_scan(tag))
            return
        try:
            self._taps.put_nowait((device, tag))
        except asyncio.QueueFull:
            self.dropped_taps += 1
            log.warning("%s: badge tap dropped, too many waiting", device.id)

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
        """Handle badge taps one at a time (lookups hit the ledger)."""
        if self._badges is None:
            return
        while True:
            device, tag = await self._taps.get()
            await self._badges.tap(device.lane, device.id, tag.uid)
