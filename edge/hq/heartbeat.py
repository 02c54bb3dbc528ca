"""The HQ service's heartbeat to systemd: READY=1 once the store is open and every loop
runs, then STATUS= lines and WATCHDOG=1 pings.

The pings come from the event loop itself, so a stuck loop sends none and systemd restarts
the service after `WatchdogSec`. A broker that is away is not a reason: the service keeps
trying and the status line says so; a restart would not bring the broker back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edge.sd_notify import Notifier


async def beat(notifier: Notifier, status: Callable[[], str]) -> None:
    """READY=1 with the first status line, then one line every beat period."""
    watchdog = notifier.watchdog_interval_s is not None
    period_s = notifier.beat_period_s()
    notifier.ready(status(), watchdog=watchdog)
    while True:
        await asyncio.sleep(period_s)
        notifier.status(status(), watchdog=watchdog)
