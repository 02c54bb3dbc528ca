"""Long-lived loops that restart after a bug instead of taking the daemon down."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

RESTART_S = 1.0


async def supervised(name: str, loop: Callable[[], Awaitable[None]], errors: Counter[str]) -> None:
    """Run one long-lived loop; should it fail on a bug, log it and start it again, so the
    HQ link can never take refunds down with it."""
    while True:
        try:
            await loop()
            return
        except Exception:  # supervisor point: logged, counted, restarted
            errors["loop_restarts"] += 1
            log.exception("%s failed; restarting it in %g s", name, RESTART_S)
            await asyncio.sleep(RESTART_S)
