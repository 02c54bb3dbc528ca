"""The supervisor of every long-lived loop: a bug in one is logged, counted and retried
with backoff, never the end of the process.

Expected failures are handled inside each loop, where their meaning is known (a broker
that went away, a device unplugged, a full disk); what reaches the supervisor is a bug,
so it is logged with its traceback. Its count by loop name is shown in /metrics and, in
total, in the HQ link's health. A loop that fails again at once waits longer each time
(`edge.backoff`), so a bug that fails at every start cannot spin the CPU or flood the log;
one that ran for `max_s` or longer before failing starts again from the first delay.
Cancellation is not a failure: it ends the loop at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

from edge.backoff import Backoff

log = logging.getLogger(__name__)

Loop = Callable[[], Awaitable[None]]

FIRST_S = 1.0
MAX_S = 60.0


async def supervised(
    name: str,
    loop: Loop,
    restarts: Counter[str],
    *,
    first_s: float = FIRST_S,
    max_s: float = MAX_S,
    on_failure: Callable[[Exception], None] | None = None,
) -> None:
    """Run `loop()` until it returns; restart it after each failure, counted in
    `restarts[name]`. `on_failure` tells the loop's owner (e.g. to show a device in error)."""
    backoff = Backoff(first_s, max_s)
    while True:
        started = time.monotonic()
        try:
            await loop()
        except Exception as exc:  # the supervisor: logged, counted, restarted
            restarts[name] += 1
            if time.monotonic() - started >= max_s:
                backoff.reset()
            delay = backoff.next_delay()
            log.exception("%s failed; restarting it in %.2f s", name, delay)
            if on_failure is not None:
                on_failure(exc)
        else:
            return
        await asyncio.sleep(delay)


def loop_restarts(restarts: Mapping[str, int]) -> dict[str, int]:
    """`{"loop_restarts": total}` for a health or presence message; empty before any."""
    total = sum(restarts.values())
    return {"loop_restarts": total} if total else {}


class Supervisor:
    """Starts loops under `supervised` in its owner's TaskGroup and keeps their restart
    counts in one place, for /metrics and the HQ link's health."""

    def __init__(self, first_s: float = FIRST_S, max_s: float = MAX_S) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self.restarts: Counter[str] = Counter()

    def start(self, group: asyncio.TaskGroup, name: str, loop: Loop) -> asyncio.Task[None]:
        """The supervised loop as a task of `group`, named `name` (the owner cancels it)."""
        run = supervised(name, loop, self.restarts, first_s=self._first_s, max_s=self._max_s)
        return group.create_task(run, name=name)
