"""The gateway's heartbeat to systemd: READY=1 once, then STATUS= lines and WATCHDOG=1 pings.

The heartbeat is the last loop the composition root starts, so its first beat, which
sends READY=1, comes after the ledger is open, the API listens and every other loop has
started. Each beat asks the ledger writer for a job that writes nothing and reads the
outbox figures; the status line then says how the HQ link and the outbox are
(`systemctl status edge-gateway` shows it).

A beat pings the watchdog only while the gateway is healthy, and the pings are sent from
the event loop itself: a loop that is stuck (a blocking call, a busy spin) sends none, and
neither does a ledger whose writer stopped or no longer answers, since then no refund
could be recorded. systemd then restarts the gateway after `WatchdogSec`. A full disk is
not a reason: the writer still answers, refunds get `storage-unavailable` and the gateway
recovers by itself when space returns, which a restart would not make faster.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Protocol, TypeVar

from edge.contract.timefmt import duration, parse_iso, utcnow
from edge.errors import StorageError
from edge.ledger.outbox import stats
from edge.sd_notify import STATUS_EVERY_S, Notifier

log = logging.getLogger(__name__)

T = TypeVar("T")


class LedgerVitals(Protocol):
    @property
    def writer_alive(self) -> bool: ...

    @property
    def storage_ok(self) -> bool: ...

    async def ping_writer(self) -> None: ...

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...


class LinkState(Protocol):
    @property
    def state(self) -> str: ...


class Heartbeat:
    """Beats every half watchdog interval (as sd_watchdog_enabled(3) advises), or every
    `STATUS_EVERY_S` without a watchdog; the writer must answer within half a beat."""

    def __init__(
        self,
        notifier: Notifier,
        ledger: LedgerVitals,
        link: LinkState,
        *,
        serving: str,
        status_every_s: float = STATUS_EVERY_S,
    ) -> None:
        self._notifier = notifier
        self._ledger = ledger
        self._link = link
        self._serving = serving
        self.period_s = notifier.beat_period_s(status_every_s)
        self._ready_sent = False
        self._healthy = True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            healthy, status = await self.beat()
            watchdog = healthy and self._notifier.watchdog_interval_s is not None
            if self._ready_sent:
                self._notifier.status(status, watchdog=watchdog)
            else:
                self._notifier.ready(status, watchdog=watchdog)
                self._ready_sent = True
            self._log_change(healthy, status)
            await asyncio.sleep(max(0.0, started + self.period_s - loop.time()))

    async def beat(self) -> tuple[bool, str]:
        """Whether the gateway is healthy, and its status line."""
        answer_s = self.period_s / 2
        writer, figures = await asyncio.gather(
            self._writer_problem(answer_s), self._ledger_figures(answer_s)
        )
        parts = [f"link {self._link.state}", figures, f"serving on {self._serving}"]
        if not self._ledger.storage_ok:
            parts.insert(0, "storage failing (see /readyz)")
        if writer is not None:
            parts.insert(0, f"UNHEALTHY: {writer}")
        return writer is None, "; ".join(parts)

    async def _writer_problem(self, answer_s: float) -> str | None:
        if not self._ledger.writer_alive:
            return "ledger writer stopped"
        try:
            await asyncio.wait_for(self._ledger.ping_writer(), answer_s)
        except TimeoutError:
            return f"ledger writer did not answer within {answer_s:g} s"
        except StorageError:
            # It answered: a refused commit (a lock held too long, a failing disk) is the
            # storage health's to report, and a restart would not cure it.
            pass
        if not self._ledger.writer_alive:
            return "ledger writer stopped"
        return None

    async def _ledger_figures(self, answer_s: float) -> str:
        try:
            outbox = await asyncio.wait_for(self._ledger.read(stats), answer_s)
        except (TimeoutError, StorageError) as exc:
            return f"outbox unknown ({str(exc) or 'no answer from the ledger'})"
        if outbox.pending == 0:
            return "outbox 0 pending"
        oldest = ""
        if outbox.oldest_pending_at is not None:
            waited = utcnow() - parse_iso(outbox.oldest_pending_at)
            oldest = f", oldest {duration(int(waited.total_seconds()))}"
        return f"outbox {outbox.pending} pending{oldest}"

    def _log_change(self, healthy: bool, status: str) -> None:
        if healthy == self._healthy:
            return
        self._healthy = healthy
        if healthy:
            log.info("healthy again: %s", status)
        else:
            log.error("%s; no watchdog pings until it recovers", status)
