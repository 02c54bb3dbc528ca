"""A small typed event bus between device readers, lanes, the API and the HQ link.

Subscribers are synchronous and must not block: they hand the event to their own
queue. One failing subscriber is logged and isolated so it cannot starve the others.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

log = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseModel)
Handler = Callable[[Any], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: dict[type[BaseModel], list[Handler]] = defaultdict(list)
        self.subscriber_failures = 0

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
        """Register `handler`; returns the function that unsubscribes it."""
        self._handlers[event_type].append(handler)

        def unsubscribe() -> None:
            handlers = self._handlers[event_type]
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    def publish(self, event: BaseModel) -> None:
        for handler in list(self._handlers[type(event)]):
            try:
                handler(event)
            except Exception:  # the bus is a supervisor: one bad subscriber must not stop the rest
                self.subscriber_failures += 1
                log.exception("subscriber %r failed on %s", handler, type(event).__name__)
