"""The outbox relay: pending events to HQ in seq order, done only when HQ acks them.

A bounded window of events is in flight at a time. An event leaves the window on HQ's ack,
or is sent again with the same event_id once `ack_timeout_s` passed and either HQ has
acked nothing for that long or HQ has acked events sent after it, and did so at least that
long ago: an event HQ has not reached yet is queued, not lost, and after a regional outage
every gateway sending its whole window again each `ack_timeout_s` would bury a busy HQ in
copies (seen in `bench/bench_hq_recovery.py`). Behind a backlog the
window is refilled a quarter at a time (one outbox read for many events, not one per ack);
at the end of the outbox a new event goes out at once. Every stored envelope is checked
against the contract's schema, in one compiled pass over its bytes, before it is sent. Acks
are written in batches through the ledger's single writer. Outbox rows are the truth and
the window is only a cache of them: on any doubt (a new connection, a failed ack write, a
replay) the relay forgets the window and starts again from the first pending event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from pydantic import ValidationError

from edge.bus import EventBus
from edge.contract.timefmt import iso, utcnow
from edge.contract.wire_envelope import check_envelope
from edge.errors import MqttLinkError, StorageError
from edge.events import OutboxAppended, RefundUpdated
from edge.hqlink.alerts import Alerts
from edge.hqlink.settings import HqSettings
from edge.ledger import hq_sync
from edge.ledger.hq_sync import Ack, PendingEvent, Sent
from edge.ledger.ledger import Ledger
from edge.memory import release_heap
from edge.mqtt.client import MqttClient

log = logging.getLogger(__name__)

ACK_BACKLOG_MAX = 20_000
SENT_FLUSH_S = 1.0
STORAGE_RETRY_S = 1.0
PRUNE_BATCH = 5_000
MARK_EVERY_S = 0.5  # how often the relay notes how far HQ's acks have reached
REFILL_FRACTION = 4  # behind a backlog, read the outbox once a quarter of the window is free
RELEASE_AFTER = 10_000  # events sent in one burst, after which freed heap goes back to the OS


@dataclass
class _Flight:
    seq: int
    payload: bytes
    first_sent: float
    sent_at: float
    order: int  # sends so far when this one went out: later sends have higher numbers


class Relay:
    def __init__(
        self,
        ledger: Ledger,
        client: MqttClient,
        topic: str,
        settings: HqSettings,
        alerts: Alerts,
        errors: Counter[str],
        bus: EventBus,
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._out_topic = topic
        self._settings = settings
        self._alerts = alerts
        self._errors = errors
        self._bus = bus
        self._inflight: dict[str, _Flight] = {}  # in send order (a re-send goes to the back)
        self._first_sent: deque[str] = deque()  # in first-send order; acked ones dropped lazily
        self._cursor = 0
        self._generation = -1
        self._maybe_more = True
        self._at_end = True  # the last read reached the end of the pending events
        self._last_appended = 0  # the highest seq the ledger announced
        self._scans = 0  # rescans so far: a read begun before one is stale
        self._refill = max(1, settings.window // REFILL_FRACTION)
        self._wake = asyncio.Event()
        self._acks: list[Ack] = []
        self._sent: dict[str, Sent] = {}
        self._ack_wake = asyncio.Event()
        self._skipped: set[int] = set()
        self.last_ack_at: float | None = None
        self._sends = 0  # every publish and re-publish, numbered
        self._acked_order = 0  # the highest send number HQ has acked
        self._last_ack_mono: float | None = None
        # (when, acked send number by then), one per MARK_EVERY_S, as far back as a timeout
        self._marks: deque[tuple[float, int]] = deque(
            maxlen=int(settings.ack_timeout_s / MARK_EVERY_S) + 4
        )
        self.published = 0
        self._published_at_release = 0
        self.resent = 0
        self.acked = 0
        self.followups = 0

    # ---- fed by the link ---------------------------------------------------------

    def on_ack(self, ack: Ack) -> None:
        """HQ acked an event: free its window slot now, record it in the next batch."""
        self.last_ack_at = time.time()
        if len(self._acks) >= ACK_BACKLOG_MAX:
            self._errors["ack_backlog_full"] += 1
            return  # still in the window, so it is sent again and HQ acks it again
        flight = self._inflight.pop(ack.event_id, None)
        if flight is not None:
            self._progress(flight.order)
            if self._should_fill():
                self._wake.set()
        self._acks.append(ack)
        self._ack_wake.set()

    def wake(self) -> None:
        self._wake.set()

    def _progress(self, order: int) -> None:
        now = time.monotonic()
        self._last_ack_mono = now
        self._acked_order = max(self._acked_order, order)
        if not self._marks or now - self._marks[-1][0] >= MARK_EVERY_S:
            self._marks.append((now, self._acked_order))  # by then, at least this far

    def _overtaken_before(self, cutoff: float) -> int:
        """The highest send number HQ had acked by `cutoff`: an event sent before that one
        and still unacked was passed over, not merely queued."""
        while len(self._marks) > 1 and self._marks[1][0] <= cutoff:
            self._marks.popleft()
        if self._marks and self._marks[0][0] <= cutoff:
            return self._marks[0][1]
        return 0

    def _send(self, event_id: str, flight: _Flight) -> None:
        self._client.publish(self._out_topic, flight.payload, qos=1)
        self._sends += 1
        flight.order = self._sends

    def rescan(self) -> None:
        """Forget the window; the next fill starts again at the first pending event."""
        self._inflight.clear()
        self._first_sent.clear()
        self._cursor = 0
        self._scans += 1
        self._maybe_more = True
        self._at_end = True
        self._wake.set()

    def unacked_for(self) -> float:
        """How long the oldest event in the window has waited for HQ (0 if none); asked on
        every refund (the offline flag), so O(1) and not a walk over the window."""
        self._drop_acked_front()
        if not self._first_sent:
            return 0.0
        return time.monotonic() - self._inflight[self._first_sent[0]].first_sent

    def _drop_acked_front(self) -> None:
        while self._first_sent and self._first_sent[0] not in self._inflight:
            self._first_sent.popleft()
        if len(self._first_sent) > 2 * len(self._inflight) + self._settings.window:
            # one old event holds the front while many after it were acked: rebuild
            flights = self._inflight
            self._first_sent = deque(sorted(flights, key=lambda e: flights[e].first_sent))

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    # ---- loops -------------------------------------------------------------------

    async def run(self) -> None:
        unsubscribe = self._bus.subscribe(OutboxAppended, self._appended)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._publish_loop(), name="hq-relay-publish")
                tg.create_task(self._ack_loop(), name="hq-relay-acks")
                tg.create_task(self._maintenance_loop(), name="hq-relay-maintenance")
        finally:
            unsubscribe()

    def _appended(self, event: OutboxAppended) -> None:
        self._last_appended = max(self._last_appended, event.last_seq)
        if event.last_seq > self._cursor:
            self._maybe_more = True
            self._wake.set()

    async def _publish_loop(self) -> None:
        while True:
            self._wake.clear()
            await self._client.wait_connected()
            if self._client.generation != self._generation:
                self._generation = self._client.generation
                self.rescan()
                self._wake.clear()
            try:
                await self._fill()
                self._resend_expired()
            except MqttLinkError:
                continue  # the connection dropped; wait for the next one
            except StorageError as exc:
                self._errors["storage_errors"] += 1
                log.error("relay cannot read the outbox: %s", exc)
                await asyncio.sleep(STORAGE_RETRY_S)
                continue
            self._release_after_burst()
            await self._idle()

    def _release_after_burst(self) -> None:
        """Once a large backlog is drained and acked, give the heap its payloads and paho's
        bookkeeping used back to the OS: a drained backlog is the gateway's biggest burst."""
        if self._inflight or self._maybe_more:
            return
        if self.published - self._published_at_release >= RELEASE_AFTER:
            self._published_at_release = self.published
            release_heap()

    def _should_fill(self) -> bool:
        """Whether to read more of the outbox now: there may be more, the ack backlog has
        room, and the window has room for a quarter of itself (at once at the outbox's end,
        where one new event is all there is)."""
        if not self._maybe_more or len(self._acks) >= ACK_BACKLOG_MAX:
            return False
        room = self._settings.window - len(self._inflight)
        return room >= self._refill or (room > 0 and self._at_end)

    async def _fill(self) -> None:
        while self._should_fill() and self._client.connected:
            room = self._settings.window - len(self._inflight)
            generation, scans, announced = self._generation, self._scans, self._last_appended
            fetch = partial(hq_sync.fetch_pending, after_seq=self._cursor, limit=room)
            rows = await self._ledger.read(fetch)
            if generation != self._client.generation or scans != self._scans:
                return  # reconnected or rescanned meanwhile; the loop starts over
            now, at = time.monotonic(), iso(utcnow())
            for row in rows:
                self._cursor = row.seq
                payload = self._checked(row)
                if payload is None or row.event_id in self._inflight:
                    continue
                flight = _Flight(row.seq, payload, now, now, 0)
                self._send(row.event_id, flight)
                self._inflight[row.event_id] = flight
                self._first_sent.append(row.event_id)
                self._note_sent(row.event_id, at)
                self.published += 1
            self._drop_acked_front()  # keeps the queue about as long as the window
            self._at_end = len(rows) < room
            # an event appended while the read ran may be missing from it: read again
            self._maybe_more = not self._at_end or self._last_appended > announced

    def _checked(self, row: PendingEvent) -> bytes | None:
        """The stored envelope if it still passes the schema; else alert and skip (kept)."""
        payload = row.envelope.encode()
        try:
            envelope = check_envelope(payload)
            if envelope["seq"] != row.seq or envelope["event_id"] != row.event_id:
                msg = "envelope seq/event_id differ from the outbox row"
                raise ValueError(msg)
        except (ValidationError, ValueError) as exc:
            if row.seq not in self._skipped:
                self._skipped.add(row.seq)
                self._errors["invalid_events"] += 1
                self._alerts.raise_(
                    "event-invalid",
                    "critical",
                    f"outbox event seq {row.seq} ({row.event_id}) fails the envelope schema"
                    f" and is kept unsent: {str(exc)[:300]}",
                    subject=str(row.seq),
                )
            return None
        return payload

    def _resend_expired(self) -> None:
        now = time.monotonic()
        due = now - self._settings.ack_timeout_s
        silent = self._last_ack_mono is None or self._last_ack_mono <= due
        passed_over = self._overtaken_before(due)
        at = ""
        while self._inflight:
            event_id, flight = next(iter(self._inflight.items()))
            if flight.sent_at > due:
                return
            if not silent and flight.order >= passed_over:
                return  # HQ is working through the window and has not reached it yet
            at = at or iso(utcnow())
            self._send(event_id, flight)
            del self._inflight[event_id]
            flight.sent_at = now
            self._inflight[event_id] = flight  # to the back: the window stays in send order
            self._note_sent(event_id, at)
            self.resent += 1

    async def _idle(self) -> None:
        if self._should_fill():
            return
        timeout = None
        if self._inflight:
            first = next(iter(self._inflight.values()))
            timeout = max(0.0, first.sent_at + self._settings.ack_timeout_s - time.monotonic())
            if timeout == 0.0:  # due, but HQ is still acking: look again in a while
                timeout = min(1.0, self._settings.ack_timeout_s / 4)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    def _note_sent(self, event_id: str, at: str) -> None:
        prior = self._sent.get(event_id)
        self._sent[event_id] = Sent(event_id, (prior.times if prior else 0) + 1, at)

    async def _ack_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SENT_FLUSH_S if self._sent else None):
                    await self._ack_wake.wait()
            self._ack_wake.clear()
            if not self._acks and not self._sent:
                continue
            acks, self._acks = self._acks, []
            sent, self._sent = list(self._sent.values()), {}
            try:
                out = await self._ledger.write(
                    partial(hq_sync.apply_acks, acks=acks, sent=sent, at=utcnow())
                )
            except StorageError as exc:
                self._errors["storage_errors"] += 1
                log.error("could not record %d HQ ack(s); sending again: %s", len(acks), exc)
                self.rescan()
                continue
            self.acked += out.newly_acked
            self._wake.set()
            for view in out.refunds:
                self._bus.publish(RefundUpdated.of(view, utcnow()))
            for event_id, reason in out.rejected:
                self._errors["rejected_events"] += 1
                self._alerts.raise_(
                    "event-rejected", "warning", f"HQ rejected {event_id}: {reason}", event_id
                )
            for conflict in out.conflicts:
                self._errors["ack_conflicts"] += 1
                log.warning("%s", conflict)

    async def _maintenance_loop(self) -> None:
        tick = min(self._settings.settle_followup_s / 2, self._settings.prune_interval_s)
        last_prune = 0.0
        while True:
            await asyncio.sleep(tick)
            try:
                if self._client.connected:
                    await self._follow_up()
                if time.monotonic() - last_prune >= self._settings.prune_interval_s:
                    last_prune = time.monotonic()
                    await self.prune()
            except StorageError as exc:
                self._errors["storage_errors"] += 1
                log.error("relay maintenance failed: %s", exc)
            except MqttLinkError:
                continue

    async def _follow_up(self) -> None:
        """Ask HQ again about refunds it accepted but has not decided for a while."""
        cutoff = iso(utcnow() - timedelta(seconds=self._settings.settle_followup_s))
        limit = self._settings.window
        rows = await self._ledger.write(lambda c: hq_sync.due_settlements(c, cutoff, limit))
        at = iso(utcnow())
        for row in rows:
            payload = self._checked(row)
            if payload is not None:
                self._client.publish(self._out_topic, payload, qos=1)
                self._note_sent(row.event_id, at)
                self.followups += 1
        if rows:
            self._ack_wake.set()

    async def prune(self) -> int:
        """Delete acked events older than the retention period, in small transactions."""
        cutoff = iso(utcnow() - timedelta(days=self._settings.acked_retention_days))
        total = 0
        while True:
            n = await self._ledger.write(lambda c: hq_sync.prune_acked(c, cutoff, PRUNE_BATCH))
            total += n
            if n < PRUNE_BATCH:
                break
        if total:
            log.info("pruned %d acked outbox events older than %s", total, cutoff)
        return total
