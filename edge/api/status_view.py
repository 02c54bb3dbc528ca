"""The gateway's state as store IT sees it: gathered once per request for /readyz, the
status page and /metrics (and judged into one verdict by `edge.api.verdict`).

Each reader asks for the depth it needs: a Prometheus scrape reads only what index
look-ups give (`Depth` "metrics"), /readyz adds the ledger's status figures, and the page
adds the outbox history, the latest refunds and reconciliation. The ledger is read on its
reader thread and checked writable through its writer, so a slow disk never holds the
event loop; a writer that does not answer within `WRITABLE_TIMEOUT_S` counts as not
writable.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from edge import __version__
from edge.api.context import ApiContext
from edge.contract.payloads import AlertMsg
from edge.errors import StorageError
from edge.ledger import recon
from edge.ledger.db import ledger_bytes
from edge.ledger.status import (
    LedgerStatus,
    OutboxGlance,
    PageStatus,
    ledger_status,
    outbox_glance,
    page_status,
)

Depth = Literal["metrics", "ready", "page"]

WRITABLE_TIMEOUT_S = 5.0
HISTORY_SPAN = timedelta(hours=6)
HISTORY_STEP = timedelta(minutes=10)
RECENT_REFUNDS = 10
# "almost full": below 5 % of the filesystem, but never more than 1 GiB is asked for
LOW_DISK_FRACTION = 0.05
LOW_DISK_CAP = 1 << 30
DEVICE_NAMES = {
    "keyboard": "scanner",
    "serial": "serial scanner",
    "nfc": "NFC reader",
    "pcsc": "card reader",
}
NOT_FOUND = "not found"  # a configured device that has not reported since the start


@dataclass(frozen=True)
class LinkFacts:
    configured: bool
    online: bool
    state: str
    since: datetime | None  # when it last went online or offline
    last_ack_at: datetime | None  # HQ's latest ack, this run or (from the ledger) before


@dataclass(frozen=True)
class DeviceFacts:
    id: str
    kind: str
    lane: str
    state: str  # connected, disconnected, error, or NOT_FOUND
    detail: str
    since: datetime | None

    @property
    def up(self) -> bool:
        return self.state == "connected"

    @property
    def kind_name(self) -> str:
        return DEVICE_NAMES.get(self.kind, self.kind)

    @property
    def name(self) -> str:
        return f"{self.kind_name} {self.id}"


@dataclass(frozen=True)
class LaneFacts:
    lane: str
    devices: tuple[str, ...]
    scans: int  # since the gateway started
    last_scan_at: datetime | None


@dataclass(frozen=True)
class DiskFacts:
    path: Path
    free: int
    total: int
    ledger_bytes: int

    @property
    def low(self) -> bool:
        return self.free < min(self.total * LOW_DISK_FRACTION, LOW_DISK_CAP)


@dataclass(frozen=True)
class Facts:
    now: datetime
    zone: tzinfo | None  # the store's zone; None: the machine's own
    zone_name: str
    store_id: str
    gateway_id: str
    version: str
    uptime_s: float
    ready: bool
    writable: bool
    database_detail: str  # "writable", or why not
    storage_failed_since: datetime | None  # since when the disk refuses the ledger's writes
    checks: dict[str, Any]  # what the extra readiness checks add to /readyz
    link: LinkFacts
    high_water: int | None  # the outbox high-water mark (None: no HQ link)
    disk: DiskFacts
    devices: list[DeviceFacts]
    lanes: list[LaneFacts]
    alerts: list[AlertMsg]
    auth_failures: dict[str, int]
    tls_fingerprint: str | None
    outbox: OutboxGlance | None = None  # None: the ledger could not be read
    ledger: LedgerStatus | None = None  # depth "ready" and "page"
    mismatches: recon.OpenCounts | None = None  # depth "ready" and "page"
    page: PageStatus | None = None  # depth "page"


class StatusView:
    """Gathers `Facts` from the API context; one per running API."""

    def __init__(self, ctx: ApiContext, clock: Callable[[], datetime] | None = None) -> None:
        self.ctx = ctx
        self._clock = clock or (lambda: datetime.now(UTC))
        self._started = time.monotonic()
        zone = ctx.settings.timezone
        self.zone: tzinfo | None = ZoneInfo(zone) if zone else None

    async def gather(self, depth: Depth) -> Facts:
        ctx = self.ctx
        now = self._clock()
        writable, detail = await self._writable()
        checks: dict[str, Any] = {}
        ready = writable
        for check in ctx.extra_ready_checks:
            ok, found = await check()
            checks.update(found)
            ready = ready and ok
        try:
            read = await self._read(depth, now)
        except StorageError:
            read = {}  # shown as "cannot be read"; readiness says whether it can write
        outbox: OutboxGlance | None = read.get("outbox")
        devices = self._devices()
        return Facts(
            now=now,
            zone=self.zone,
            zone_name=self._zone_name(now),
            store_id=ctx.settings.store_id,
            gateway_id=ctx.settings.gateway_id,
            version=__version__,
            uptime_s=time.monotonic() - self._started,
            ready=ready,
            writable=writable,
            database_detail=detail,
            storage_failed_since=ctx.ledger.storage_failed_since,
            checks=checks,
            link=self._link(None if outbox is None else outbox.last_acked_at),
            high_water=ctx.settings.hq.outbox_high_water if ctx.settings.hq.enabled else None,
            disk=self._disk(),
            devices=devices,
            lanes=self._lanes(devices),
            alerts=[] if ctx.link_details is None else ctx.link_details.open_alerts(),
            auth_failures=dict(ctx.auth.failures),
            tls_fingerprint=ctx.tls_fingerprint,
            **read,
        )

    async def _read(self, depth: Depth, now: datetime) -> dict[str, Any]:
        """The ledger's part, in one job on its reader thread."""
        ledger = self.ctx.ledger
        if depth == "metrics":
            return {"outbox": await ledger.read(outbox_glance)}
        if depth == "ready":
            status, counts = await ledger.read(
                lambda conn: (ledger_status(conn, now), recon.open_counts(conn))
            )
            return {
                "outbox": OutboxGlance.of(status.outbox),
                "ledger": status,
                "mismatches": counts,
            }
        local = now.astimezone(self.zone)
        day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        page = await ledger.read(
            lambda conn: page_status(
                conn,
                now,
                span=HISTORY_SPAN,
                step=HISTORY_STEP,
                refunds=RECENT_REFUNDS,
                day_start=day_start,
            )
        )
        return {
            "outbox": page.outbox,
            "ledger": page.ledger,
            "mismatches": page.mismatches,
            "page": page,
        }

    async def _writable(self) -> tuple[bool, str]:
        try:
            async with asyncio.timeout(WRITABLE_TIMEOUT_S):
                await self.ctx.ledger.check_writable()
        except StorageError as exc:
            return False, str(exc)
        except TimeoutError:
            return False, f"the ledger writer did not answer within {WRITABLE_TIMEOUT_S:g} s"
        return True, "writable"

    def _zone_name(self, now: datetime) -> str:
        if self.ctx.settings.timezone:
            return self.ctx.settings.timezone
        return f"{now.astimezone().tzname()} (this machine's time zone)"

    def _link(self, ledger_ack: datetime | None) -> LinkFacts:
        ctx = self.ctx
        details = ctx.link_details
        since = last_ack = None
        if details is not None:
            since = _instant(details.state_since)
            last_ack = _instant(details.last_ack_at)
        if ledger_ack is not None:
            last_ack = ledger_ack if last_ack is None else max(last_ack, ledger_ack)
        return LinkFacts(
            configured=ctx.settings.hq.enabled,
            online=ctx.link.online,
            state=ctx.link.state,
            since=since,
            last_ack_at=last_ack,
        )

    def _disk(self) -> DiskFacts:
        folder = self.ctx.settings.data_dir
        usage = shutil.disk_usage(folder)
        return DiskFacts(folder, usage.free, usage.total, ledger_bytes(self.ctx.settings.db_path))

    def _devices(self) -> list[DeviceFacts]:
        configured = self.ctx.settings.devices
        seen = {} if self.ctx.lanes is None else dict(self.ctx.lanes.health)
        found: list[DeviceFacts] = []
        for kind, entries in (
            ("keyboard", configured.keyboards),
            ("serial", configured.serial),
            ("nfc", configured.nfc),
            ("pcsc", configured.pcsc),
        ):
            for entry in entries:
                health = seen.get(entry.id)
                if health is None:
                    found.append(DeviceFacts(entry.id, kind, entry.lane, NOT_FOUND, "", None))
                else:
                    found.append(
                        DeviceFacts(
                            entry.id, kind, entry.lane, health.state, health.detail, health.since
                        )
                    )
        return sorted(found, key=lambda d: (d.lane, d.id))

    def _lanes(self, devices: list[DeviceFacts]) -> list[LaneFacts]:
        lanes = self.ctx.lanes
        scans = {} if lanes is None else dict(lanes.lane_scans)
        last = {} if lanes is None else dict(lanes.last_scan_at)
        serving: dict[str, list[str]] = {}
        for device in devices:
            serving.setdefault(device.lane, []).append(device.id)
        names = sorted(set(serving) | set(scans))
        return [
            LaneFacts(name, tuple(serving.get(name, ())), scans.get(name, 0), last.get(name))
            for name in names
        ]


def _instant(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def oldest_age(facts: Facts) -> float | None:
    """Seconds the oldest pending event has waited (None: nothing pending, or unread)."""
    outbox = facts.outbox
    if outbox is None or outbox.oldest_pending_at is None:
        return None
    return max(0.0, (facts.now - outbox.oldest_pending_at).total_seconds())
