"""The lane hub: live events to WebSocket subscribers, with a short replay for reconnects.

Every message gets a monotonically increasing `id`; a register that reconnects with
`?after=<id>` within `replay_s` gets what it missed. Each subscriber has a bounded queue:
a client too slow to keep up is dropped (its iterator ends), never allowed to grow memory.
Scans, device news and grants go to their lane's subscribers and to store-wide monitors
(lane=None); `refund.updated` goes to everyone. Monitors, and lane subscribers attached
without `grants` (a client whose role cannot post refunds), see that a grant was issued but
not the grant itself: only the lane's register may use it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from edge.bus import EventBus
from edge.events import ApprovalGrantEvent, DeviceStatusEvent, RefundUpdated, ScanEvent
from edge.lanes.settings import LanesSettings
from edge.lanes.subscription import Message, Subscription

log = logging.getLogger(__name__)


def _visible(sub_lane: str | None, msg_lane: str | None) -> bool:
    return sub_lane is None or msg_lane is None or msg_lane == sub_lane


def _for_subscriber(sub: Subscription, message: Message) -> Message:
    if message["type"] == "approval.granted" and not (sub.grants and sub.lane is not None):
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
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._clock = clock
        # Ids continue across restarts (wall-clock milliseconds), so a register's stale
        # `after` from before a restart never hides new events.
        self._last_id = (
            first_id if first_id is not None else int(datetime.now(UTC).timestamp() * 1000)
        )
        self._replay: deque[tuple[float, int, str | None, Message]] = deque()
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
        self, lane: str | None, after: int | None = None, *, grants: bool = True
    ) -> Subscription:
        """A new subscriber for one lane (None: every lane), primed with missed events.

        `grants`: whether this subscriber may receive the lane's approval grant tokens.
        """
        sub = Subscription(lane, self._settings.subscriber_queue, self._detach, grants=grants)
        if self._closed:  # the gateway is stopping: the subscriber ends at once
            sub.close()
            return sub
        self._prune()
        if after is not None:
            missed = [
                _for_subscriber(sub, message)
                for _, msg_id, msg_lane, message in self._replay
                if msg_id > after and _visible(lane, msg_lane)
            ]
            for message in missed[-self._settings.subscriber_queue :]:
                sub.offer(message)
        self._subscribers.add(sub)
        return sub

    def _detach(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def _prune(self) -> None:
        horizon = self._clock() - self._settings.replay_s
        replay = self._replay
        while replay and (replay[0][0] < horizon or len(replay) > self._settings.replay_max_events):
            replay.popleft()

    def _on_event(self, event: BaseModel) -> None:
        message: dict[str, Any] = event.model_dump(mode="json")
        self._last_id += 1
        message["id"] = self._last_id
        lane = message.get("lane") if not isinstance(event, RefundUpdated) else None
        self._replay.append((self._clock(), self._last_id, lane, message))
        self._prune()
        for sub in list(self._subscribers):
            if _visible(sub.lane, lane) and not sub.offer(_for_subscriber(sub, message)):
                self.dropped_subscribers += 1
                log.warning("event subscriber for lane %s dropped: too slow", sub.lane or "*")
