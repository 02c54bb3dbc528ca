"""Running a blocking reader loop (nfcpy, pyscard) in its own thread, owned by an asyncio task.

The thread never touches asyncio objects directly: it posts callbacks with
`call_soon_threadsafe`. Cancelling the owning task sets the stop event, runs the reader's
`interrupt` (to wake a blocking call early; off the loop, since it may talk to a daemon),
and awaits the thread's end before returning, so no thread outlives its owner. An exception
that ends the thread is raised in the owning task, where the devices supervisor reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from edge.devices.sink import DeviceRef, DeviceSink, DeviceState

Post = Callable[..., None]


def _poster(loop: asyncio.AbstractEventLoop) -> Post:
    def post(callback: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed while the thread finished up
            loop.call_soon_threadsafe(callback, *args)

    return post


async def run_worker_thread(
    name: str,
    body: Callable[[threading.Event, Post], None],
    interrupt: Callable[[], None] | None = None,
) -> None:
    """Run `body(stop, post)` in a thread until it returns or this coroutine is cancelled."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    finished: asyncio.Future[Exception | None] = loop.create_future()
    post = _poster(loop)

    def settle(outcome: Exception | None) -> None:
        if not finished.done():
            finished.set_result(outcome)

    def main() -> None:
        outcome: Exception | None = None
        try:
            body(stop, post)
        except Exception as exc:  # noqa: BLE001 - handed to the owning task, which raises it
            outcome = exc
        post(settle, outcome)

    thread = threading.Thread(target=main, name=name)
    thread.start()
    try:
        await asyncio.shield(finished)
    finally:
        stop.set()
        if interrupt is not None and not finished.done():
            await asyncio.to_thread(interrupt)
        await finished
        thread.join()  # it has posted its outcome: only its last instructions are left
    failure = finished.result()
    if failure is not None:
        raise failure


class ThreadedReader:
    """What the NFC and PC/SC readers share: their device, sink, counters and status posts."""

    def __init__(self, ref: DeviceRef, sink: DeviceSink) -> None:
        self._ref = ref
        self._sink = sink
        self.taps = 0
        self.read_errors = 0

    @property
    def ref(self) -> DeviceRef:
        return self._ref

    def _status(self, post: Post, state: DeviceState, detail: str) -> None:
        post(self._sink.status, self._ref, state, detail)
