"""The lane hub: live events to WebSocket subscribers, kept a while for registers that are away.

Every message gets a monotonically increasing `id` and is kept for `replay_s`. A register
gets back what it missed in two ways:

- reconnecting with `?after=<id>`, it gets every kept message after that id;
- a scan, tap or device status made on a lane while none of that lane's registers was
  connected is held and handed to the next register that subscribes to that lane, with or
  without `after`. Once any register of the lane has taken a message it is no longer held,
  so a register app that restarts without `after` gets only what no register took.

A "register" here is a lane subscriber whose role may post refunds (register, handheld).
Only registers take held messages and receive grant tokens: monitors and store-wide
subscribers (lane=None) see every lane live and see that a grant was issued, never the
token, and leave held messages for the lane's registers. A held grant is handed over only
while it can still be redeemed. `refund.updated` goes to everyone. Each subscriber has a
bounded queue: a client too slow to keep up is dropped (its iterator ends), never allowed
to grow memory.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from pydantic import BaseModel

from edge.bus import EventBus
from edge.events import ApprovalGrantEvent, DeviceStatusEvent, RefundUpdated, ScanEvent
from edge.lanes.settings import LanesSettings
from edge.lanes.subscription import Message, Subscription

log = logging.getLogger(__name__)


@dataclass
class _Kept:
    """A message kept for replay, and whether a register of its lane has taken it.

    The message is made from the event when a subscriber first needs it: most refunds are
    recorded while no register listens, and serialising each one's view would cost the
    event loop on every refund."""

    at: float
    id: int
    lane: str | None
    event: BaseModel
    valid_until: float  # a grant's expiry on the hub's clock; inf for everything else
    taken: bool = False
    _message: Message | None = None

    @property
    def message(self) -> Message:
        if self._message is None:
            self._message = self.event.model_dump(mode="json")
            self._message["id"] = self.id
        return self._message


def _visible(sub_lane: str | None, msg_lane: str | None) -> bool:
    return sub_lane is None or msg_lane is None or msg_lane == sub_lane


def _takes_held(sub: Subscription, msg_lane: str | None) -> bool:
    """Whether `sub` is a register of the message's lane (so the lane has been served)."""
    return sub.register and sub.lane is not None and sub.lane == msg_lane


def _for_subscriber(sub: Subscription, message: Message) -> Message:
    if message["type"] == "approval.granted" and not (sub.register and sub.lane is not None):
        return {k: v for k, v in message.items() if k != "grant"}
    return message


class LaneHub:
    """Fans bus events out to subscribers; `async with hub:` wires it to the bus."""

    def __init__(
        self,
        bus: EventBus,
        settings: LanesSettings,
        clock: Callable[[], float] = time.monotonic,
        first_id: int | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._clock = clock
        self._now = now
        # Ids continue across restarts (wall-clock milliseconds), so a register's stale
        # `after` from before a restart never hides new events.
        self._last_id = first_id if first_id is not None else int(now().timestamp() * 1000)
        self._kept: deque[_Kept] = deque()
        self._subscribers: set[Subscription] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self._closed = False
        self.dropped_subscribers = 0

    async def __aenter__(self) -> LaneHub:
        self._closed = False
        for event_type in (ScanEvent, DeviceStatusEvent, ApprovalGrantEvent, RefundUpdated):
            self._unsubscribe.append(self._bus.subscribe(event_type, self._on_event))
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self._closed = True
        for sub in list(self._subscribers):
            sub.close()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def last_id(self) -> int:
        return self._last_id

    def attach(
        self, lane: str | None, after: int | None = None, *, register: bool = True
    ) -> Subscription:
        """A new subscriber for one lane (None: every lane), primed with what it missed.

        `after`: the id of the last message this client received, if it knows it.
        `register`: whether the client's role may post refunds (see the module docstring).
        """
        sub = Subscription(lane, self._settings.subscriber_queue, self._detach, register=register)
        if self._closed:  # the gateway is stopping: the subscriber ends at once
            sub.close()
            return sub
        self._prune()
        now = self._clock()
        missed = [
            kept
            for kept in self._kept
            if kept.valid_until > now
            and _visible(lane, kept.lane)
            and (
                (after is not None and kept.id > after)
                or (not kept.taken and _takes_held(sub, kept.lane))
            )
        ]
        for kept in missed[-self._settings.subscriber_queue :]:
            sub.offer(_for_subscriber(sub, kept.message))
            if _takes_held(sub, kept.lane):
                kept.taken = True
        # Nothing can be published between priming and joining (no await), so the
        # subscriber gets every message once: the missed ones, then the live ones.
        self._subscribers.add(sub)
        return sub

    def _detach(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def _prune(self) -> None:
        horizon = self._clock() - self._settings.replay_s
        kept = self._kept
        while kept and (kept[0].at < horizon or len(kept) > self._settings.replay_max_events):
            kept.popleft()

    def _valid_until(self, event: BaseModel, at: float) -> float:
        if isinstance(event, ApprovalGrantEvent):
            return at + (event.expires_at - self._now()).total_seconds()
        return math.inf

    def _on_event(self, event: BaseModel) -> None:
        self._last_id += 1
        # A refund's update goes to every lane; the others belong to the lane they name.
        lane = (
            event.lane
            if isinstance(event, ScanEvent | DeviceStatusEvent | ApprovalGrantEvent)
            else None
        )
        at = self._clock()
        kept = _Kept(at, self._last_id, lane, event, self._valid_until(event, at))
        self._kept.append(kept)
        self._prune()
        for sub in list(self._subscribers):
            if not _visible(sub.lane, lane):
                continue
            if sub.offer(_for_subscriber(sub, kept.message)):
                kept.taken = kept.taken or _takes_held(sub, lane)
            else:
                self.dropped_subscribers += 1
                log.warning("event subscriber for lane %s dropped: too slow", sub.lane or "*")
