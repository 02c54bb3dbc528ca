"""The retained `health` message: what a fleet operator needs to judge one store at a glance.

Published every `health_interval_s` (and on connect and on request), QoS 0 and retained, so
the newest is what anyone subscribing later sees. The same pass raises or clears the
outbox high-water alert.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from edge.bus import EventBus
from edge.contract.health import (
    DeviceHealth,
    HealthMsg,
    LinkHealth,
    OutboxHealth,
    ReconHealth,
    RelayHealth,
)
from edge.contract.payloads import encode
from edge.contract.timefmt import parse_iso, utcnow
from edge.errors import MqttLinkError, StorageError
from edge.events import DeviceStatusEvent
from edge.hqlink.alerts import Alerts
from edge.hqlink.relay import Relay
from edge.hqlink.settings import HqSettings
from edge.ledger.db import ledger_bytes
from edge.ledger.ledger import Ledger
from edge.mqtt.client import MqttClient
from edge.supervise import loop_restarts

log = logging.getLogger(__name__)


class DeviceStates:
    """The last status of every device, from the bus."""

    def __init__(self) -> None:
        self._devices: dict[str, DeviceHealth] = {}

    def attach(self, bus: EventBus) -> Callable[[], None]:
        return bus.subscribe(DeviceStatusEvent, self._update)

    def _update(self, event: DeviceStatusEvent) -> None:
        self._devices[event.device] = DeviceHealth(
            kind=event.kind,
            lane=event.lane,
            state=event.state,
            detail=event.detail,
            at=event.at,
        )

    def snapshot(self) -> dict[str, DeviceHealth]:
        return dict(self._devices)


class HealthReporter:
    def __init__(
        self,
        *,
        client: MqttClient,
        topic: str,
        settings: HqSettings,
        ledger: Ledger,
        relay: Relay,
        alerts: Alerts,
        errors: Counter[str],
        restarts: Mapping[str, int],
        devices: DeviceStates,
        link_state: Callable[[], str],
        data_dir: Path,
        version: str,
        recon: Callable[[], Awaitable[ReconHealth]] | None = None,
    ) -> None:
        """`recon`: reconciliation's figures, read with each health message."""
        self._client = client
        self._out_topic = topic
        self._settings = settings
        self._ledger = ledger
        self._relay = relay
        self._alerts = alerts
        self._errors = errors
        self._restarts = restarts
        self._devices = devices
        self._link_state = link_state
        self._data_dir = data_dir
        self._version = version
        self._recon = recon
        self.published = 0

    async def run(self) -> None:
        while True:
            await self.publish_once()
            await asyncio.sleep(self._settings.health_interval_s)

    async def publish_once(self) -> HealthMsg | None:
        try:
            health = await self.snapshot()
        except StorageError as exc:
            self._errors["storage_errors"] += 1
            log.error("health: cannot read the ledger: %s", exc)
            return None
        try:
            self._client.publish(self._out_topic, encode(health), qos=0, retain=True)
        except MqttLinkError:
            return health  # retained health is refreshed on the next connect
        self.published += 1
        return health

    async def snapshot(self) -> HealthMsg:
        now = utcnow()
        stats = await self._ledger.status()
        box = stats.outbox
        self._check_high_water(box.pending)
        oldest_age = None
        if box.oldest_pending_at is not None:
            oldest_age = round((now - parse_iso(box.oldest_pending_at)).total_seconds(), 1)
        disk = shutil.disk_usage(self._data_dir)
        db_bytes = ledger_bytes(self._ledger.path)
        relay = self._relay
        last_ack = relay.last_ack_at
        recon = None if self._recon is None else await self._recon()
        return HealthMsg(
            at=now,
            version=self._version,
            link=LinkHealth(
                state=self._link_state(),
                protocol=self._client.protocol,
                connected_since=_stamp(self._client.connected_since),
            ),
            outbox=OutboxHealth(
                pending=box.pending,
                oldest_pending_age_s=oldest_age,
                last_seq=box.last_seq,
                in_flight=relay.in_flight,
                high_water=self._settings.outbox_high_water,
            ),
            last_hq_ack_at=_stamp(last_ack) if last_ack is not None else box.last_acked_at,
            relay=RelayHealth(
                published=relay.published,
                resent=relay.resent,
                acked=relay.acked,
                followups=relay.followups,
            ),
            refunds_today=stats.refunds_today,
            refunds_awaiting_hq=stats.refunds_awaiting_hq,
            devices=self._devices.snapshot(),
            disk_free_bytes=disk.free,
            db_bytes=db_bytes,
            errors={**self._errors, **loop_restarts(self._restarts)},
            alerts_open=self._alerts.open(),
            uptime_s=round(time.monotonic() - _STARTED, 1),
            recon=recon,
        )

    def _check_high_water(self, pending: int) -> None:
        mark = self._settings.outbox_high_water
        if pending > mark:
            self._alerts.raise_(
                "outbox-high-water",
                "warning",
                f"{pending} events wait for HQ (high-water mark {mark}); none is dropped",
            )
        elif pending <= mark * 0.9:
            self._alerts.clear("outbox-high-water")


_STARTED = time.monotonic()


def _stamp(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)
