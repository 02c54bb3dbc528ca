"""The gateway's HQ link: what the API sees (`online`, `state`, order look-up) and the loops
behind it (broker connection, relay, health, commands).

`online` means HQ can confirm refunds now, judged from what the public contract gives: the
broker connection is up and, while events are pending, HQ has not left one unacked for longer
than `ack_silence_s`. It drives the `offline` flag and the offline limits of refunds, and shows
in /readyz, health and the logs (every change is logged). An HQ that announces itself (retained
presence under `{prefix}/_hq/presence/+`) only refines this view when the gateway is set to
`require_hq_presence`; events and look-ups never wait for it, so an HQ that implements only
the contract's topics gets everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from edge.bus import EventBus
from edge.contract.health import BirthMsg, WillMsg
from edge.contract.payloads import (
    AckMsg,
    AlertMsg,
    Malformed,
    PresenceMsg,
    StateMsg,
    encode,
    parse,
)
from edge.contract.timefmt import utcnow
from edge.contract.topics import GatewayTopics
from edge.domain.errors import HqUnreachable
from edge.domain.views import SaleView
from edge.errors import MqttLinkError, StorageError
from edge.hqlink.alerts import Alerts
from edge.hqlink.commands import Commands, command_name
from edge.hqlink.health import DeviceStates, HealthReporter
from edge.hqlink.lookup import OrderLookup
from edge.hqlink.recon import Reconciler
from edge.hqlink.relay import Relay
from edge.hqlink.settings import HqSettings, ReconSettings
from edge.ledger import hq_sync
from edge.ledger.hq_sync import Ack
from edge.ledger.ledger import Ledger
from edge.mqtt.client import Message, MqttClient, Outgoing, Will
from edge.supervise import supervised

log = logging.getLogger(__name__)

INBOX_MAX = 10_000
STATE_WATCH_S = 1.0


class HqLink:
    def __init__(
        self,
        settings: HqSettings,
        *,
        ledger: Ledger,
        bus: EventBus,
        data_dir: Path,
        version: str,
        journal_order: Callable[[dict[str, Any]], Awaitable[SaleView]],
        restarts: Counter[str] | None = None,
        recon: ReconSettings | None = None,
    ) -> None:
        """`journal_order`: validates HQ's order as a sale and journals it (raising
        Malformed when it is unusable); `restarts`: where the link's supervised loops count
        their restarts (the gateway's own, so /metrics shows them); health reports their
        total; `recon`: the `[recon]` settings (defaults when not given)."""
        origin = ledger.origin
        self.settings = settings
        self.topics = topics = GatewayTopics(settings.prefix, origin.store_id, origin.gateway_id)
        self.errors: Counter[str] = Counter()
        self.restarts: Counter[str] = restarts if restarts is not None else Counter()
        self._ledger = ledger
        self._bus = bus
        self._version = version
        self._started_at = utcnow()
        self._was_online = False
        self._state_since = time.time()
        self._bd_seq = 0
        self._presence: dict[str, str] = {}
        self._birth_echoed = False
        self._inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=INBOX_MAX)
        self.client = MqttClient(
            settings.broker,
            client_id=f"edge-{origin.store_id}-{origin.gateway_id}",
            name="hq-link",
            on_message=self._received,
            subscriptions=[
                (topics.acks, 1),
                (topics.cmd_filter, 1),
                (topics.lookup_reply, 1),
                (topics.recon_digest, 1),
                (topics.presence_filter(), 1),
                (topics.state, 1),
            ],
            prepare=self._prepare,
            on_connect=self._born,
            on_disconnect=self._lost,
        )
        self.alerts = Alerts(self.client, topics.alerts)
        self.relay = Relay(
            ledger,
            self.client,
            topics.events,
            settings,
            self.alerts,
            self.errors,
            bus,
        )
        self.recon = Reconciler(
            client=self.client,
            topics=topics,
            settings=recon or ReconSettings(),
            ledger=ledger,
            alerts=self.alerts,
            errors=self.errors,
        )
        self.devices = DeviceStates()
        self.health = HealthReporter(
            client=self.client,
            topic=topics.health,
            settings=settings,
            ledger=ledger,
            relay=self.relay,
            alerts=self.alerts,
            errors=self.errors,
            restarts=self.restarts,
            devices=self.devices,
            link_state=lambda: self.state,
            data_dir=data_dir,
            version=version,
            recon=self.recon.health,
        )
        self.commands = Commands(
            client=self.client,
            result_topic=topics.cmd_result,
            ledger=ledger,
            relay=self.relay,
            health=self.health,
            alerts=self.alerts,
            errors=self.errors,
            reconcile=self.run_checkpoint,
        )
        self.lookup = OrderLookup(
            self.client,
            topics,
            timeout_s=settings.lookup_timeout_s,
            cache_s=settings.lookup_cache_s,
            available=lambda: self.client.connected,
            errors=self.errors,
        )
        self._journal_order = journal_order

    # ---- HqLinkView --------------------------------------------------------------

    @property
    def state(self) -> str:
        if not self.client.connected:
            return self.client.state
        if self.settings.require_hq_presence and not self._hq_present():
            return "offline: no HQ service online"
        waited = self.relay.unacked_for()
        if waited > self.settings.ack_silence_s:
            return f"offline: HQ has not acked for over {self.settings.ack_silence_s:g} s"
        return "online"

    @property
    def online(self) -> bool:
        return self.state == "online"

    # ---- what the status page and /metrics show besides the state ----------------

    @property
    def state_since(self) -> float:
        """When the link last went online or offline (Unix time; the link's start while it
        has never been online), so the status page can say "offline to HQ since 10:42"."""
        self._note_state(self.online)
        return self._state_since

    @property
    def last_ack_at(self) -> float | None:
        """When HQ last acked an event since the gateway started (Unix time)."""
        return self.relay.last_ack_at

    def open_alerts(self) -> list[AlertMsg]:
        return self.alerts.open()

    def _note_state(self, online: bool) -> None:
        if online != self._was_online:
            self._was_online = online
            self._state_since = time.time()

    async def run_checkpoint(self) -> str:
        """Run the reconciliation checkpoint now; its report's id (StorageError if the
        ledger cannot run it). The report is published when the broker is reachable."""
        return await self.recon.run_checkpoint()

    async def lookup_order(self, code: str) -> SaleView | None:
        sale = await self.lookup.ask(code)
        if sale is None:
            return None
        try:
            return await self._journal_order(sale)
        except Malformed as exc:
            self.errors["malformed_messages"] += 1
            self.lookup.forget(code)
            log.warning("look-up of %s: %s", code, exc)
            raise HqUnreachable(f"HQ answered for {code} with an order we cannot use") from None

    # ---- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> HqLink:
        await self.recon.restore_alerts()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        goodbye = Outgoing(self.topics.state, self._death(), qos=1, retain=True)
        await self.client.close([goodbye])

    async def run(self) -> None:
        """Every loop of the link; the caller owns this task and cancels it to stop."""
        unsubscribe = self.devices.attach(self._bus)
        try:
            loops: dict[str, Callable[[], Awaitable[None]]] = {
                "hq-mqtt": self.client.run,
                "hq-inbox": self._dispatch,
                "hq-relay": self.relay.run,
                "hq-health": self.health.run,
                "hq-commands": self.commands.run,
                "hq-recon-digests": self.recon.run,
                "hq-recon-checkpoint": self.recon.run_schedule,
                "hq-link-state": self._watch_state,
            }
            async with asyncio.TaskGroup() as tg:
                for name, loop in loops.items():
                    tg.create_task(supervised(name, loop, self.restarts), name=name)
        finally:
            unsubscribe()

    # ---- connection hooks --------------------------------------------------------

    def _death(self) -> bytes:
        return encode(WillMsg(bd_seq=self._bd_seq))

    async def _prepare(self) -> Will:
        try:
            self._bd_seq = await self._ledger.write(hq_sync.next_bd_seq)
        except StorageError as exc:
            self._bd_seq += 1
            log.error("bd_seq not stored (%s); using %d", exc, self._bd_seq)
        return Will(self.topics.state, self._death(), qos=1, retain=True)

    def _birth(self) -> bytes:
        return encode(
            BirthMsg(
                version=self._version,
                started_at=self._started_at,
                bd_seq=self._bd_seq,
                protocol=self.client.protocol,
            )
        )

    async def _born(self) -> None:
        self._birth_echoed = False
        self.client.publish(self.topics.state, self._birth(), qos=1, retain=True)
        self.alerts.flush()
        self.relay.wake()
        await self.health.publish_once()
        await self.recon.publish_unpublished()

    def _lost(self, reason: str) -> None:
        self._presence.clear()  # the retained presence comes again with the next SUBACK

    def _hq_present(self) -> bool:
        """Whether an HQ instance announces itself now (a refinement, never a requirement)."""
        return self.client.connected and "online" in self._presence.values()

    # ---- incoming ----------------------------------------------------------------

    def _received(self, msg: Message) -> None:
        """paho callback (loop thread): hand on, never block."""
        try:
            self._inbox.put_nowait(msg)
        except asyncio.QueueFull:
            self.errors["inbox_overflow"] += 1  # an ack lost here only means a re-send

    async def _dispatch(self) -> None:
        while True:
            msg = await self._inbox.get()
            try:
                self._route(msg)
            except Malformed as exc:
                self.errors["malformed_messages"] += 1
                log.warning("ignored a malformed message on %s: %s", msg.topic, exc)
            except MqttLinkError as exc:  # an answer to it could not go out: the link is down
                log.info("could not answer a message on %s: %s", msg.topic, exc)

    def _route(self, msg: Message) -> None:
        topics = self.topics
        if msg.topic == topics.acks:
            a = parse(AckMsg, msg.payload)
            self.relay.on_ack(
                Ack(a.event_id, a.status, a.return_id, a.processor_ref, a.erp_ref, a.reason)
            )
        elif msg.topic == topics.lookup_reply:
            self.lookup.on_reply(msg)
        elif msg.topic == topics.recon_digest:
            self.recon.submit(msg.payload)
        elif msg.topic.startswith(topics.base + "/cmd/"):
            self.commands.submit(command_name(msg.topic, topics.base), msg)
        elif msg.topic == topics.state:
            self._check_own_state(msg)
        elif msg.topic.startswith(topics.presence_filter()[:-1]):
            self._presence_changed(msg)
        else:
            self.errors["foreign_messages"] += 1
            log.warning("ignored a message on an unexpected topic %s", msg.topic)

    def _presence_changed(self, msg: Message) -> None:
        """An HQ instance came or went; when HQ comes back, send the window again now
        rather than after the ack timeout (what was in flight went nowhere)."""
        instance = msg.topic.rsplit("/", 1)[1]
        was_present = self._hq_present()
        if msg.payload:
            self._presence[instance] = parse(PresenceMsg, msg.payload).state
        else:
            self._presence.pop(instance, None)
        if self._hq_present() and not was_present:
            self.relay.rescan()

    def _check_own_state(self, msg: Message) -> None:
        """A late Will of an earlier session (or a stray write) must not leave the retained
        state saying offline while this session is up: publish the birth again."""
        state = parse(StateMsg, msg.payload) if msg.payload else None
        if state is not None and state.state == "online":
            self._birth_echoed = state.bd_seq == self._bd_seq
            return
        if self._birth_echoed and self.client.connected:  # not the retained one from before
            self.errors["state_corrected"] += 1
            self.client.publish(self.topics.state, self._birth(), qos=1, retain=True)

    async def _watch_state(self) -> None:
        """Log every change of the link state (the state itself is computed on demand)."""
        last = ""
        while True:
            now = self.state
            self._note_state(now == "online")
            if now != last:
                level = logging.WARNING if now.startswith("offline") else logging.INFO
                log.log(level, "HQ link %s", now)
                last = now
            await asyncio.sleep(STATE_WATCH_S)
