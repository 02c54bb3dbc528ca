"""One live-events subscriber: an async iterator over a bounded queue of JSON-ready dicts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Message = dict[str, Any]
_END: Message = {}


class Subscription:
    """Yields messages for one WebSocket; ends when closed or when it fell too far behind.

    Messages are shared between subscribers: treat them as read-only.
    """

    def __init__(
        self,
        lane: str | None,
        size: int,
        detach: Callable[[Subscription], None],
        *,
        register: bool = True,
    ) -> None:
        self.lane = lane
        # A client whose role may post refunds: it receives a lane's grant tokens and, on
        # a lane, takes delivery of what was held for the lane's next register.
        self.register = register
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=size + 1)  # +1: room to end
        self._size = size
        self._detach = detach
        self.closed = False
        self.dropped = False

    def offer(self, message: Message) -> bool:
        """Queue a message; False (and the subscription ends) if the subscriber is full."""
        if self.closed:
            return False
        if self._queue.qsize() >= self._size:
            self.dropped = True
            self._end()
            return False
        self._queue.put_nowait(message)
        return True

    def close(self) -> None:
        """Stop the subscription (idempotent); a waiting iterator ends."""
        if not self.closed:
            self._end()

    def _end(self) -> None:
        self.closed = True
        self._detach(self)
        while not self._queue.empty():  # whatever is still queued will not be sent
            self._queue.get_nowait()
        self._queue.put_nowait(_END)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        message = await self._queue.get()
        if message is _END:
            self._queue.put_nowait(_END)  # later calls end too
            raise StopAsyncIteration
        return message
