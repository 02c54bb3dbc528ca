"""Composition of the reference HQ service for `edge-gateway hq`: store, simulated
processor and ERP (plain, or booking documents through a Shopify, NetSuite or SAP field
mapping), the service, run until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from edge.hq.heartbeat import beat
from edge.hq.processor import Erp, SimulatedErp, SimulatedProcessor, SimulatedSettings
from edge.hq.recon.erp import ProfiledErp
from edge.hq.recon.erp_profiles import ProfileName, profile
from edge.hq.service import HqService, HqServiceSettings, default_instance
from edge.hq.store import HqStore
from edge.hq.web import FleetServer, stats_of
from edge.mqtt.settings import BrokerSettings
from edge.sd_notify import Notifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HqRunOptions:
    broker: BrokerSettings
    prefix: str
    db_path: Path  # the SQLite store, unless db_url is given
    instance: str | None
    group: str
    settle_workers: int
    decline_card_over: str | None
    delay_s: float
    failure_rate: float
    stats_interval_s: float = 30.0
    http_host: str = "127.0.0.1"  # the fleet page, its JSON, /metrics and /healthz
    http_port: int = 8090  # 0: no HTTP listener
    db_url: str | None = None  # sqlite+aiosqlite:///path or postgresql+psycopg://...
    claim_lease_s: float = 60.0
    erp_profile: ProfileName | None = None  # the simulated ERP books mapped documents
    recon_schedule: bool = True
    recon_hour_utc: int = 2
    recon_interval_s: float | None = None  # instead of daily, for demos and tests
    recon_period_s: float = 86_400.0


async def run_hq(options: HqRunOptions, stop: asyncio.Event) -> int:
    simulated = SimulatedSettings(
        decline_card_over=None
        if options.decline_card_over is None
        else Decimal(options.decline_card_over),
        delay_s=options.delay_s,
        failure_rate=options.failure_rate,
    )
    settings = HqServiceSettings(
        broker=options.broker,
        prefix=options.prefix,
        db_path=None if options.db_url else options.db_path,
        db_url=options.db_url or None,
        instance=options.instance or default_instance(),
        group=options.group,
        settle_workers=options.settle_workers,
        simulated=simulated,
        stats_interval_s=options.stats_interval_s,
        claim_lease_s=options.claim_lease_s,
        recon_schedule=options.recon_schedule,
        recon_hour_utc=options.recon_hour_utc,
        recon_interval_s=options.recon_interval_s,
        recon_period_s=options.recon_period_s,
    )
    store_url = settings.store_url()
    store = HqStore(store_url)
    erp: Erp = SimulatedErp()
    if options.erp_profile is not None:
        erp = ProfiledErp(store, profile(options.erp_profile))
    service = HqService(settings, store, SimulatedProcessor(simulated), erp)
    async with service:
        log.info(
            "HQ service %s: broker %s:%s, prefix %s, store %s",
            settings.instance,
            settings.broker.host,
            settings.broker.port,
            settings.prefix,
            store_url.render_as_string(hide_password=True),
        )
        async with contextlib.AsyncExitStack() as http, asyncio.TaskGroup() as tg:
            if options.http_port:
                server = FleetServer(stats_of(service), options.http_host, options.http_port)
                await http.enter_async_context(server)
            task = tg.create_task(service.run(), name="hq-service")
            notifier = Notifier.from_environment()

            def status() -> str:
                broker = "connected" if service.client.connected else "connecting"
                return f"instance {settings.instance}; broker {broker}"

            # Started last: READY=1 comes once the store is open and the loops above run.
            heartbeat = tg.create_task(beat(notifier, status), name="hq-heartbeat")
            await stop.wait()
            notifier.stopping()
            task.cancel()
            heartbeat.cancel()
    log.info("HQ service %s stopped", settings.instance)
    return 0
