"""The composition root: builds every component from one validated Settings and runs them.

Nothing imports this module. Resources nest in an AsyncExitStack so they close in reverse
order (LAN listener first, so in-flight requests finish before the ledger closes); every
long-lived loop runs in one TaskGroup owned here, each under the supervisor
(`edge.supervise`): a bug in one is logged, counted in /metrics and the loop restarted
with backoff, so it never takes the gateway down.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from datetime import timedelta
from functools import partial

from edge import __version__
from edge.api.auth import Authenticator, load_signing_key
from edge.api.context import ApiContext, HqLinkView, StandaloneLink
from edge.api.discovery import Advertiser, gateway_record, should_advertise
from edge.api.metrics import ApiMetrics
from edge.api.orders import OrderJournal
from edge.api.routes_events import EventsApi
from edge.api.server import LanServer
from edge.api.tls import prepare_lan_tls
from edge.bus import EventBus
from edge.contract.timefmt import utcnow
from edge.devices.readers import DeviceReaders
from edge.errors import ConfigError, StorageError
from edge.heartbeat import Heartbeat
from edge.hqlink.alerts import report_storage
from edge.hqlink.link import HqLink
from edge.hqlink.recon import checkpoint_once
from edge.hqlink.settings import ReconSettings
from edge.lanes.approvals import ApprovalGrants, BadgeApprovals
from edge.lanes.hub import LaneHub
from edge.lanes.router import LaneRouter
from edge.ledger import kpis, storage
from edge.ledger.ledger import Ledger
from edge.ledger.lock import DataDirBusy, DataDirLock
from edge.ledger.outbox import Origin
from edge.memory import release_startup_garbage
from edge.sd_notify import Notifier
from edge.settings import Settings, example_ids
from edge.supervise import Supervisor

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 600.0


async def run_gateway(
    settings: Settings,
    stop: asyncio.Event,
    notifier: Notifier | None = None,
) -> None:
    """Run until `stop` is set, then shut down in order."""
    _warn_on_example_ids(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # HTTPS on the LAN (edge.api.tls): a bad certificate setting stops here, before anything
    # opens; a missing generated certificate is made now.
    lan_tls = await asyncio.to_thread(prepare_lan_tls, settings)
    bus = EventBus()
    supervisor = Supervisor()
    origin = Origin(settings.store_id, settings.gateway_id)
    async with AsyncExitStack() as stack:
        stack.enter_context(_data_dir_lock(settings))  # held until everything has closed
        ledger = await stack.enter_async_context(Ledger(settings.db_path, bus, origin))
        auth = Authenticator(ledger, load_signing_key(settings.data_dir), settings.lan.token_ttl_s)
        # Without HQ, the reconciliation checkpoint still runs on demand, locally.
        standalone = StandaloneLink(partial(_local_checkpoint, ledger, settings.recon))
        link: HqLinkView = standalone
        hq: HqLink | None = None
        if settings.hq.enabled:  # entered before the LAN listener, so it closes after it
            hq = HqLink(
                settings.hq,
                ledger=ledger,
                bus=bus,
                data_dir=settings.data_dir,
                version=__version__,
                journal_order=OrderJournal(ledger).record,
                restarts=supervisor.restarts,
                recon=settings.recon,
            )
            link = await stack.enter_async_context(hq)
        # Devices feed lanes; a badge tap becomes a single-use approval grant.
        grants = ApprovalGrants(bus, settings.lanes.grant_ttl_s)

        async def audit_badge(action: str, subject: str, detail: dict[str, object]) -> None:
            await ledger.audit("badge-reader", action, subject, dict(detail))

        badges = BadgeApprovals(grants, ledger.manager_for_badge, audit_badge)
        lane_router = LaneRouter(bus, settings.lanes, badges)
        device_readers = DeviceReaders(settings.devices, lane_router, restarts=supervisor.restarts)
        hub = LaneHub(bus, settings.lanes)
        ctx = ApiContext(
            settings=settings,
            ledger=ledger,
            auth=auth,
            bus=bus,
            link=link,
            metrics=ApiMetrics(
                task_restarts=supervisor.restarts,
                subscriber_failures=bus.subscriber_failures,
                collectors=[] if hq is None else [hq.recon.metrics],
            ),
            grants=grants,
            extra_ready_checks=[lane_router.ready_check],
            tls_fingerprint=lan_tls.fingerprint if lan_tls else None,
            link_details=standalone if hq is None else hq,
            lanes=lane_router,
        )
        server = await stack.enter_async_context(
            LanServer(
                ctx,
                settings.lan.bind,
                settings.lan.port,
                extra=EventsApi(
                    hub,
                    ctx.principal,
                    max_per_client=settings.lan.max_subscribers_per_client,
                    failed=ctx.metrics.internal_errors.labels("/v1/events").inc,
                ).routes(),
                ssl_context=lan_tls.context if lan_tls else None,
            )
        )
        # Entered after the listener, so it closes first and WebSocket clients end at once.
        await stack.enter_async_context(hub)
        if should_advertise(settings.lan) and server.port is not None:
            # Registers find the bound listener by name; withdrawn (goodbye) before it closes.
            record = gateway_record(settings, server.port, ctx.tls_fingerprint, __version__)
            advertiser = Advertiser(record, settings.lan.bind)
            ctx.metrics.registry.register(advertiser)
            await stack.enter_async_context(advertiser)
        log.info(
            "gateway %s/%s ready; ledger %s",
            settings.store_id,
            settings.gateway_id,
            settings.db_path,
        )
        release_startup_garbage()
        notifier = notifier or Notifier.from_environment()
        heartbeat = Heartbeat(notifier, ledger, link, serving=f"port {server.port}")
        housekeeping = partial(_housekeeping, ledger, settings)
        async with asyncio.TaskGroup() as tg:
            loops = [
                supervisor.start(tg, "ledger-housekeeping", housekeeping),
                supervisor.start(tg, "devices", device_readers.run),
                supervisor.start(tg, "lane-router", lane_router.run),
            ]
            if hq is not None:
                loops.append(supervisor.start(tg, "hq-link", hq.run))
            storage_watch = partial(
                storage.watch,
                ledger.storage,
                settings.data_dir,
                settings.storage.probe_interval_s,
                _no_hq_alert if hq is None else partial(report_storage, hq.alerts),
            )
            loops.append(supervisor.start(tg, "storage-watch", storage_watch))
            # Last: its first beat, READY=1, comes once every loop above has started.
            loops.append(supervisor.start(tg, "heartbeat", heartbeat.run))
            await stop.wait()
            for task in loops:
                task.cancel()
        notifier.stopping()
        log.info("stopping: finishing in-flight requests, then closing the ledger")
    log.info("gateway %s/%s stopped", settings.store_id, settings.gateway_id)


def _data_dir_lock(settings: Settings) -> DataDirLock:
    """One gateway per data directory (a second one, or a restore, would corrupt the first)."""
    lock = DataDirLock(settings.data_dir)
    try:
        lock.acquire()
    except DataDirBusy as exc:
        raise ConfigError([("data_dir", f"{exc}; stop it or give this one its own")]) from None
    return lock


def _no_hq_alert(problem: str | None) -> None:
    """Without an HQ link, a storage failure shows in the log, /readyz and the status page."""


def _warn_on_example_ids(settings: Settings) -> None:
    """HQ tells gateways apart by these ids; two left on the example would mix their events."""
    keys = example_ids(settings)
    if len(keys) == 1:
        log.warning(
            "%s is still the example value: set it in the configuration so HQ can tell"
            " this gateway from others",
            keys[0],
        )
    elif keys:
        log.warning(
            "%s are still the example values: set them in the configuration so HQ can tell"
            " this gateway from others",
            " and ".join(keys),
        )


async def _local_checkpoint(ledger: Ledger, settings: ReconSettings) -> str:
    """A checkpoint run with no HQ link: stored, never published."""
    return (await checkpoint_once(ledger, settings, utcnow())).report_id


async def _housekeeping(ledger: Ledger, settings: Settings) -> None:
    keep = timedelta(hours=settings.idempotency.retention_hours)
    while True:
        try:
            pruned = await ledger.prune_idempotency(keep)
        except StorageError as exc:
            log.warning("could not prune idempotency keys: %s", exc)
        else:
            if pruned:
                log.info("pruned %d idempotency keys older than %s", pruned, keep)
        try:
            await ledger.write(partial(kpis.prune_lookups, before=utcnow() - kpis.LOOKUPS_KEPT))
        except StorageError as exc:
            log.warning("could not prune receipt look-ups: %s", exc)
        await asyncio.sleep(HOUSEKEEPING_S)
