"""The reference HQ service: consumes every gateway's events, settles refunds, acks, answers
order look-ups, and keeps the fleet view.

Events and look-ups arrive through MQTT 5 shared subscriptions (`$share/{group}/...`), so
several instances share the load; on a broker without them (MQTT 3.1.1: RabbitMQ 3.x, NATS)
every instance receives every event (see `shared_subscriptions`). Either way each event is
recorded once (by `event_id`) in the store they share, and acked only after that commit.
Refunds then go to the processor and the ERP, from whichever instance holds the refund's
lease in the store; the outcome is recorded once, and acked again (settled/declined) with
the references by the instance that recorded it. Reconciliation (contract v1.1): digests go
out on a schedule, each slot by one instance, and reports are stored once by `report_id`
(`edge/hq/recon/`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from edge.backoff import Backoff
from edge.contract.payloads import LookupMsg, Malformed, dumps, encode, parse
from edge.contract.recon import Digest, Report
from edge.contract.timefmt import iso, utcnow
from edge.contract.topics import (
    GatewayTopics,
    fleet_filter,
    hq_presence,
    parse_gateway_topic,
    shared,
)
from edge.errors import MqttLinkError
from edge.hq import settlement
from edge.hq import store as hq_store
from edge.hq.database import database_url
from edge.hq.fleet import FleetView
from edge.hq.fleet_store import save_fleet
from edge.hq.processor import (
    Erp,
    ProcessorUnavailable,
    RefundProcessor,
    RefundRequest,
    SimulatedSettings,
)
from edge.hq.recon import digest as recon_digest
from edge.hq.recon.reports import store_report
from edge.hq.settlement import Decided
from edge.hq.store import AckOut, HqStore, HqStoreError, Incoming
from edge.mqtt.client import Capabilities, Message, MqttClient, Outgoing, Will
from edge.mqtt.settings import BrokerSettings
from edge.supervise import loop_restarts, supervised

log = logging.getLogger(__name__)

EVENTS_MAX = 50_000
LOOKUPS_MAX = 1_000
FLEET_MAX = 50_000
REPORTS_MAX = 1_000
GAP_CHECK_S = 30.0


def default_instance() -> str:
    """Host and pid, without dots: the name is a topic level, and NATS refuses a topic with
    a dot while RabbitMQ turns each dot into a level separator (docs/brokers.md)."""
    return f"{socket.gethostname().replace('.', '-')}-{os.getpid()}"


class HqServiceSettings(BaseModel):
    """`shared_subscriptions`: "auto" uses `$share/{group}/` for events and look-ups only
    when the broker offers it (MQTT 5 and its CONNACK does not say Shared Subscription
    Available = 0); "on" always (e.g. mosquitto also shares 3.1.1 clients); "off" never.
    Without sharing, every instance receives every event and look-up: the store records
    each event once (by `event_id`) and settles each refund once (by `return_id`), so the
    result is the same, at the cost of every instance doing the work (docs/brokers.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    prefix: str = "retail/v1"
    db_path: Path | None = None  # an SQLite file, or:
    db_url: str | None = None  # sqlite+aiosqlite:///path or postgresql+psycopg://...
    instance: str = Field(default_factory=default_instance, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    group: str = Field("hq", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    shared_subscriptions: Literal["auto", "on", "off"] = "auto"
    batch_max: int = Field(2_000, ge=1)
    settle_workers: int = Field(8, ge=1, le=256)
    retry_initial_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(60.0, gt=0)
    gap_grace_s: float = Field(60.0, gt=0)
    claim_lease_s: float = Field(60.0, gt=0)  # longer than a processor and ERP call take
    stats_interval_s: float = Field(30.0, gt=0)
    simulated: SimulatedSettings = Field(default_factory=SimulatedSettings)
    # reconciliation digests: every day at `recon_hour_utc`:00 UTC (or every
    # `recon_interval_s`, for demos and tests), each over the `recon_period_s` before
    recon_schedule: bool = True
    recon_hour_utc: int = Field(2, ge=0, le=23)
    recon_interval_s: float | None = Field(None, gt=0)
    recon_period_s: float = Field(86_400.0, gt=0)

    @model_validator(mode="after")
    def _one_store(self) -> HqServiceSettings:
        if (self.db_path is None) == (self.db_url is None):
            raise ValueError("give the HQ store as db_path or db_url (exactly one)")
        self.store_url()  # a URL naming another database is refused here
        return self

    def store_url(self) -> URL:
        if self.db_url is not None:
            return database_url(self.db_url)
        assert self.db_path is not None  # checked by _one_store
        return database_url(self.db_path)


class HqService:
    def __init__(
        self,
        settings: HqServiceSettings,
        store: HqStore,
        processor: RefundProcessor,
        erp: Erp,
    ) -> None:
        self.settings = settings
        self.store = store
        self.fleet = FleetView(settings.prefix)
        self.counters: Counter[str] = Counter()
        self.restarts: Counter[str] = Counter()  # by loop, for `loop_restarts` in presence
        self._processor = processor
        self._erp = erp
        self._prefix = settings.prefix
        self._presence = hq_presence(settings.prefix, settings.instance)
        self._started_at = iso(utcnow())
        self._events: asyncio.Queue[Incoming] = asyncio.Queue(maxsize=EVENTS_MAX)
        self._lookups: asyncio.Queue[Message] = asyncio.Queue(maxsize=LOOKUPS_MAX)
        self._fleet_msgs: asyncio.Queue[Message] = asyncio.Queue(maxsize=FLEET_MAX)
        self._reports: asyncio.Queue[Incoming] = asyncio.Queue(maxsize=REPORTS_MAX)
        self._settle: asyncio.Queue[str] = asyncio.Queue()
        self._decided: asyncio.Queue[Decided] = asyncio.Queue()
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._pending: set[str] = set()  # queued for or being settled here
        self._reported_gaps: set[str] = set()
        self._ack_topics: dict[tuple[str, str], str] = {}  # one entry a gateway
        self.client = MqttClient(
            settings.broker,
            client_id=f"hq-{settings.instance}",
            name=f"hq-{settings.instance}",
            on_message=self._received,
            subscriptions=self._subscriptions,
            prepare=self._will,
            on_connect=self._born,
        )

    def _subscriptions(self, broker: Capabilities) -> list[tuple[str, int]]:
        """Chosen at every connect: whether events and look-ups can be shared depends on
        what the broker offers this connection."""
        mode, prefix = self.settings.shared_subscriptions, self._prefix
        share = mode == "on" or (mode == "auto" and broker.shared_subscriptions)
        work = [
            fleet_filter(prefix, "events"),
            fleet_filter(prefix, "lookup"),
            fleet_filter(prefix, "recon/report"),  # stored once by report_id either way
        ]
        if share:
            work = [shared(self.settings.group, f) for f in work]
        elif mode == "auto":
            log.info("the broker offers no shared subscriptions: this instance takes everything")
        return [
            *((f, 1) for f in work),
            (fleet_filter(prefix, "state"), 1),
            (fleet_filter(prefix, "health"), 0),
            (fleet_filter(prefix, "alerts"), 1),
        ]

    async def __aenter__(self) -> HqService:
        await self.store.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        bye = Outgoing(self._presence, self._presence_body("offline"), qos=1, retain=True)
        await self.client.close([bye])
        await self.store.close()

    async def run(self) -> None:
        loops: dict[str, Callable[[], Awaitable[None]]] = {
            "hq-mqtt": self.client.run,
            "hq-ingest": self._ingest_loop,
            "hq-lookups": self._lookup_loop,
            "hq-fleet": self._fleet_loop,
            "hq-gaps": self._gap_loop,
            "hq-stats": self._stats_loop,
            "hq-decisions": self._decision_loop,
            "hq-orphans": self._orphan_loop,
            "hq-recon-reports": self._report_loop,
        }
        if self.settings.recon_schedule:
            loops["hq-recon-digests"] = self._digest_loop
        loops.update(
            {f"hq-settle-{n}": self._settle_loop for n in range(self.settings.settle_workers)}
        )
        async with asyncio.TaskGroup() as tg:
            for name, loop in loops.items():
                tg.create_task(supervised(name, loop, self.restarts), name=name)
            for return_id in await self.store.read(settlement.open_refunds):
                self._queue_settle(return_id)

    # ---- connection ----------------------------------------------------------------

    def _presence_body(self, state: str) -> bytes:
        """Presence, with this instance's counters (malformed input, acks, refunds...)."""
        return dumps(
            {
                "state": state,
                "instance": self.settings.instance,
                "started_at": self._started_at,
                "at": iso(utcnow()),
                "counters": {**self.counters, **loop_restarts(self.restarts)},
            }
        )

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            if self.client.connected:
                body = self._presence_body("online")
                with contextlib.suppress(MqttLinkError):
                    self.client.publish(self._presence, body, qos=1, retain=True)

    async def _will(self) -> Will:
        return Will(self._presence, self._presence_body("offline"), qos=1, retain=True)

    async def _born(self) -> None:
        self.client.publish(self._presence, self._presence_body("online"), qos=1, retain=True)

    def _received(self, msg: Message) -> None:
        """paho callback: sort by leaf into bounded queues, never block."""
        addr = parse_gateway_topic(self._prefix, msg.topic)
        leaf = addr.leaf if addr is not None else ""
        try:
            if addr is not None and leaf == "events":
                self._events.put_nowait(Incoming(addr.store_id, addr.gateway_id, msg.payload))
            elif leaf == "lookup":
                self._lookups.put_nowait(msg)
            elif addr is not None and leaf == "recon/report":
                self._reports.put_nowait(Incoming(addr.store_id, addr.gateway_id, msg.payload))
            elif leaf in ("state", "health", "alerts"):
                self._fleet_msgs.put_nowait(msg)
            else:
                self.counters["foreign_messages"] += 1
        except asyncio.QueueFull:
            self.counters[f"dropped_{leaf}"] += 1  # gateways send events again; look-ups time out

    def _ack(self, ack: AckOut) -> None:
        key = (ack.store_id, ack.gateway_id)
        topic = self._ack_topics.get(key)
        if topic is None:
            topic = self._ack_topics[key] = GatewayTopics(self._prefix, *key).acks
        try:
            self.client.publish(topic, dumps(ack.body), qos=1)
            self.counters[f"acks_{ack.body['status']}"] += 1
        except MqttLinkError:
            self.counters["acks_lost"] += 1  # the gateway sends the event again

    # ---- events --------------------------------------------------------------------

    async def _ingest_loop(self) -> None:
        while True:
            batch = [await self._events.get()]
            while len(batch) < self.settings.batch_max and not self._events.empty():
                batch.append(self._events.get_nowait())
            try:
                result = await self.store.write(partial(hq_store.ingest, items=batch))
            except HqStoreError as exc:
                self.counters["storage_errors"] += 1
                log.error(
                    "could not record %d events (they will be sent again): %s", len(batch), exc
                )
                continue
            self.counters["events_new"] += result.new_events
            self.counters["events_duplicate"] += result.duplicates
            for problem in result.malformed:
                self.counters["malformed_messages"] += 1
                log.warning("ignored a malformed event from %s", problem)
            for stream in result.gaps_opened:
                log.info(
                    "seq gap opened for %s (events arrive out of order or are missing)", stream
                )
            for ack in result.acks:
                self._ack(ack)
            for return_id in result.new_refunds:
                self._queue_settle(return_id)

    # ---- refunds -------------------------------------------------------------------

    def _queue_settle(self, return_id: str) -> None:
        """Settle it here (once: a refund already queued or waiting to retry is left be)."""
        if return_id not in self._pending and return_id not in self._retries:
            self._pending.add(return_id)
            self._settle.put_nowait(return_id)

    async def _settle_loop(self) -> None:
        while True:
            return_id = await self._settle.get()
            try:
                await self._settle_one(return_id)
            except HqStoreError as exc:
                self.counters["storage_errors"] += 1
                log.error("could not settle %s now: %s", return_id, exc)
                self._retry(return_id, 1)
            finally:
                self._pending.discard(return_id)

    async def _settle_one(self, return_id: str) -> None:
        """Call the processor and the ERP for a refund this instance holds the lease on."""
        instance = self.settings.instance
        lease_ms = int(self.settings.claim_lease_s * 1000)
        claim = await self.store.write(
            partial(
                settlement.claim_refund, return_id=return_id, instance=instance, lease_ms=lease_ms
            )
        )
        row = claim.request
        if row is None:
            if claim.held_until_ms is not None:  # another instance is on it: look again later
                self.counters["refunds_claimed_elsewhere"] += 1
                self._retry_in(return_id, max(0.0, claim.held_until_ms / 1000 - time.time()))
            return
        request = RefundRequest.from_row(row)
        try:
            decision = await self._processor.refund(request)
            erp_ref = await self._erp.post(request, decision)
        except ProcessorUnavailable as exc:
            self.counters["processor_unavailable"] += 1
            log.warning("processor unavailable for %s: %s", return_id, exc)
            await self._release(return_id, int(row["attempts"]) + 1)
            return
        except Exception:  # supervisor point: a processor/ERP plug-in bug must not stop HQ
            self.counters["processor_errors"] += 1
            log.exception("processor or ERP failed on %s; trying again later", return_id)
            await self._release(return_id, int(row["attempts"]) + 1)
            return
        self._decided.put_nowait(
            Decided(return_id, decision.status, decision.processor_ref, erp_ref, decision.reason)
        )

    async def _release(self, return_id: str, attempts: int) -> None:
        """Give the lease back and retry with backoff (here, or on any instance first)."""
        instance = self.settings.instance
        await self.store.write(
            partial(settlement.release_claim, return_id=return_id, instance=instance)
        )
        self._retry(return_id, attempts)

    async def _decision_loop(self) -> None:
        """Record outcomes in batches (one fsync for many), then ack each."""
        while True:
            batch = [await self._decided.get()]
            while not self._decided.empty():
                batch.append(self._decided.get_nowait())
            record = partial(
                settlement.record_decisions, decided=batch, instance=self.settings.instance
            )
            try:
                recorded = await self.store.write(record)
            except HqStoreError as exc:
                self.counters["storage_errors"] += 1
                log.error("could not record %d outcomes; deciding again: %s", len(batch), exc)
                for item in batch:
                    self._retry(item.return_id, 1)
                continue
            self.counters["refunds_decided_elsewhere"] += len(recorded.lost)
            for ack in recorded.acks:
                self.counters[f"refunds_{ack.body['status']}"] += 1
                self._ack(ack)

    def _retry(self, return_id: str, attempts: int) -> None:
        backoff = Backoff(self.settings.retry_initial_s, self.settings.retry_max_s)
        backoff.failures = max(0, attempts - 1)
        self._retry_in(return_id, backoff.next_delay())

    def _retry_in(self, return_id: str, delay: float) -> None:
        old = self._retries.pop(return_id, None)
        if old is not None:
            old.cancel()

        def again() -> None:
            self._retries.pop(return_id, None)
            self._queue_settle(return_id)

        self._retries[return_id] = asyncio.get_running_loop().call_later(delay, again)

    async def _orphan_loop(self) -> None:
        """Settle refunds no instance is settling: taken in by an instance that stopped
        before it could (its lease ran out, or it never claimed them)."""
        lease = self.settings.claim_lease_s
        while True:
            await asyncio.sleep(lease)
            received_before = iso(utcnow() - timedelta(seconds=lease))
            query = partial(
                settlement.orphaned_refunds,
                now_ms=settlement.now_ms(),
                received_before=received_before,
            )
            try:
                orphans = await self.store.read(query)
            except HqStoreError as exc:
                log.error("could not look for unsettled refunds: %s", exc)
                continue
            for return_id in orphans:
                self._queue_settle(return_id)

    # ---- look-ups --------------------------------------------------------------------

    async def _lookup_loop(self) -> None:
        while True:
            msg = await self._lookups.get()
            try:
                await self._answer(msg)
            except Malformed as exc:
                self.counters["malformed_messages"] += 1
                log.warning("ignored a malformed look-up on %s: %s", msg.topic, exc)
            except HqStoreError as exc:
                self.counters["storage_errors"] += 1
                log.error("look-up failed: %s", exc)

    async def _answer(self, msg: Message) -> None:
        addr = parse_gateway_topic(self._prefix, msg.topic)
        assert addr is not None
        request = parse(LookupMsg, msg.payload)
        reply_to = msg.response_topic or request.reply_to
        base = GatewayTopics(self._prefix, addr.store_id, addr.gateway_id).base
        if not reply_to.startswith(base + "/"):
            raise Malformed(f"reply topic {reply_to!r} is not the asking gateway's")
        sale = await self.store.read(partial(hq_store.find_order, code=request.code))
        self.counters["lookups_found" if sale else "lookups_not_found"] += 1
        body = {"request_id": request.request_id, "found": sale is not None, "sale": sale}
        try:
            self.client.publish(
                reply_to,
                dumps(body),
                qos=1,
                correlation=msg.correlation or request.request_id.encode(),
            )
        except MqttLinkError:
            self.counters["lookups_lost"] += 1

    # ---- fleet -----------------------------------------------------------------------

    async def _fleet_loop(self) -> None:
        while True:
            msgs = [await self._fleet_msgs.get()]
            while not self._fleet_msgs.empty():
                msgs.append(self._fleet_msgs.get_nowait())
            now = time.time()
            changed: set[tuple[str, str]] = set()
            alerts: list[tuple[str, str, bytes]] = []
            for msg in msgs:
                try:
                    addr = self.fleet.apply(msg, now)
                except Malformed as exc:
                    self.counters["malformed_messages"] += 1
                    log.warning("ignored a malformed fleet message on %s: %s", msg.topic, exc)
                    continue
                changed.add((addr.store_id, addr.gateway_id))
                if addr.leaf == "alerts":
                    alerts.append((addr.store_id, addr.gateway_id, msg.payload))
                    log.warning(
                        "alert from %s/%s: %s", addr.store_id, addr.gateway_id, msg.payload[:300]
                    )
            views = [v for k in changed if (v := self.fleet.get(*k)) is not None]
            try:
                await self.store.write(partial(save_fleet, views=views, alerts=alerts))
            except HqStoreError as exc:
                self.counters["storage_errors"] += 1
                log.error("could not save the fleet view: %s", exc)

    async def _gap_loop(self) -> None:
        while True:
            await asyncio.sleep(GAP_CHECK_S)
            try:
                streams = await self.store.read(hq_store.stream_report)
            except HqStoreError as exc:
                log.error("could not read streams: %s", exc)
                continue
            for s in streams:
                name = f"{s['store_id']}/{s['gateway_id']}"
                if s["gap"] is None:
                    self._reported_gaps.discard(name)
                elif name not in self._reported_gaps and s["gap_since"] is not None:
                    self._reported_gaps.add(name)
                    log.warning(
                        "gateway %s: events after seq %d are missing (seen up to %d) since %s",
                        name,
                        s["gap"]["after"],
                        s["gap"]["up_to"],
                        s["gap_since"],
                    )

    # ---- reconciliation ---------------------------------------------------------------

    async def _report_loop(self) -> None:
        """Store each gateway report once (by `report_id`), whichever instance gets it."""
        while True:
            item = await self._reports.get()
            try:
                report = parse(Report, item.payload)
                stored = await self.store.write(
                    partial(
                        store_report,
                        report=report,
                        store_id=item.store_id,
                        gateway_id=item.gateway_id,
                        instance=self.settings.instance,
                    )
                )
            except (Malformed, ValueError) as exc:
                self.counters["malformed_messages"] += 1
                log.warning(
                    "ignored a malformed report from %s/%s: %s", item.store_id, item.gateway_id, exc
                )
                continue
            except HqStoreError as exc:
                self.counters["storage_errors"] += 1
                log.error("could not store a reconciliation report (it is lost): %s", exc)
                continue
            self.counters["recon_reports_new" if stored.new else "recon_reports_duplicate"] += 1
            if stored.mismatches:
                log.info(
                    "reconciliation report %s from %s/%s: %d mismatches",
                    report.report_id,
                    item.store_id,
                    item.gateway_id,
                    stored.mismatches,
                )

    def _next_slot(self, now: datetime) -> datetime:
        interval = self.settings.recon_interval_s
        if interval is not None:
            return recon_digest.interval_slot(now, interval) + timedelta(seconds=interval)
        return recon_digest.daily_slot(now, self.settings.recon_hour_utc) + timedelta(days=1)

    async def _digest_loop(self) -> None:
        """Send every known gateway its digest at each scheduled slot. Of several
        instances the one that records the slot first sends it (`recon_digests.slot`)."""
        while True:
            slot = self._next_slot(utcnow())
            await asyncio.sleep(max(0.0, (slot - utcnow()).total_seconds()))
            try:
                await self.send_digests(slot)
            except HqStoreError as exc:
                self.counters["storage_errors"] += 1
                log.error("could not build the reconciliation digests for %s: %s", iso(slot), exc)

    async def send_digests(
        self, to: datetime, only: tuple[str, str] | None = None, trigger: str = "schedule"
    ) -> list[Digest]:
        """Build, record and publish the digests of the period ending at `to` (for every
        known gateway, or `only` one); returns those this instance published."""
        period = recon_digest.Period(to - timedelta(seconds=self.settings.recon_period_s), to)
        targets = [only] if only else await self.store.read(recon_digest.known_gateways)
        sent: list[Digest] = []
        for store_id, gateway_id in targets:
            slot = f"{store_id}/{gateway_id}/{iso(to)}" if trigger == "schedule" else None
            digests = await self.store.write(
                partial(
                    _claim_digests,
                    store_id=store_id,
                    gateway_id=gateway_id,
                    period=period,
                    slot=slot,
                    trigger=trigger,
                    instance=self.settings.instance,
                )
            )
            topic = GatewayTopics(self._prefix, store_id, gateway_id).recon_digest
            for d in digests:
                try:
                    self.client.publish(topic, encode(d), qos=1)
                except MqttLinkError:
                    self.counters["recon_digests_lost"] += 1
                    log.warning(
                        "digest %s for %s/%s not sent: broker link down",
                        d.digest_id,
                        store_id,
                        gateway_id,
                    )
                    continue
                self.counters["recon_digests_sent"] += 1
                sent.append(d)
        return sent


async def _claim_digests(
    conn: AsyncConnection,
    store_id: str,
    gateway_id: str,
    period: recon_digest.Period,
    slot: str | None,
    trigger: str,
    instance: str,
) -> list[Digest]:
    """The digests of one gateway, recorded; none when another instance holds the slot."""
    digests = await recon_digest.build_digests(conn, store_id, gateway_id, period, utcnow())
    for n, d in enumerate(digests):
        claimed = await recon_digest.record_digest(
            conn,
            d,
            store_id,
            gateway_id,
            trigger,
            instance,
            slot=None if slot is None else f"{slot}/{n}",
        )
        if not claimed:
            return []
    return digests
