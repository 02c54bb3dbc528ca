"""A small typed event bus between device readers, lanes, the API and the HQ link.

Subscribers are synchronous and must not block: they hand the event to their own
queue. The bus is the subscribers' supervisor: one that raises is logged with its
traceback and counted (by event type, shown in /metrics), and every other subscriber still
gets the event, as does the failing one with the next event. A publisher never sees a
subscriber's failure, so a bug in a WebSocket fan-out cannot undo a committed refund.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

log = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseModel)
Handler = Callable[[Any], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: dict[type[BaseModel], list[Handler]] = defaultdict(list)
        self.subscriber_failures: Counter[str] = Counter()

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
        """Register `handler`; returns the function that unsubscribes it."""
        self._handlers[event_type].append(handler)

        def unsubscribe() -> None:
            handlers = self._handlers[event_type]
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    def publish(self, event: BaseModel) -> None:
        """Hand `event` to every subscriber of its type, in the order they subscribed."""
        name = type(event).__name__
        for handler in list(self._handlers[type(event)]):
            try:
                handler(event)
            except Exception:  # supervisor point: one bad subscriber must not stop the rest
                self.subscriber_failures[name] += 1
                log.exception("subscriber %r failed on %s", handler, name)
