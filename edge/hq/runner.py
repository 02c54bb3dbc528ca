"""Composition of the reference HQ service for `edge-gateway hq`: store, simulated
processor and ERP, the service, run until stopped."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from edge.hq.processor import SimulatedErp, SimulatedProcessor, SimulatedSettings
from edge.hq.service import HqService, HqServiceSettings, default_instance
from edge.hq.store import HqStore
from edge.mqtt.settings import BrokerSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HqRunOptions:
    broker: BrokerSettings
    prefix: str
    db_path: Path
    instance: str | None
    group: str
    settle_workers: int
    decline_card_over: str | None
    delay_s: float
    failure_rate: float
    stats_interval_s: float = 30.0


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
        db_path=options.db_path,
        instance=options.instance or default_instance(),
        group=options.group,
        settle_workers=options.settle_workers,
        simulated=simulated,
        stats_interval_s=options.stats_interval_s,
    )
    service = HqService(
        settings, HqStore(settings.db_path), SimulatedProcessor(simulated), SimulatedErp()
    )
    async with service:
        log.info(
            "HQ service %s: broker %s:%s, prefix %s, store %s",
            settings.instance,
            settings.broker.host,
            settings.broker.port,
            settings.prefix,
            settings.db_path,
        )
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(service.run(), name="hq-service")
            await stop.wait()
            task.cancel()
    log.info("HQ service %s stopped", settings.instance)
    return 0
