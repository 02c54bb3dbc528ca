"""Knowing when input devices come and go: udev's monitor where udevd runs, else polling.

The supervisor only needs "something changed, look again"; it re-scans and diffs. udev
events arrive after udevd has made the /dev/input/by-path links, so a re-scan right away
sees the new device's port path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

UDEV_CONTROL = Path("/run/udev/control")
# With udev we still look again now and then: a missed netlink message must not strand a device.
UDEV_SAFETY_POLL_S = 60.0


class HotplugWatcher(Protocol):
    async def __aenter__(self) -> HotplugWatcher: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def wait_change(self) -> None:
        """Return when the set of input devices may have changed."""


class PollingWatcher:
    """Fallback for boxes without udevd (containers, minimal images): look every interval."""

    def __init__(self, interval_s: float) -> None:
        self._interval = interval_s
        self._nudged = asyncio.Event()

    async def __aenter__(self) -> PollingWatcher:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def nudge(self) -> None:
        """Look again now (a reader lost its device)."""
        self._nudged.set()

    async def wait_change(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._nudged.wait(), timeout=self._interval)
        self._nudged.clear()


class UdevWatcher(PollingWatcher):
    """pyudev's netlink monitor on the input subsystem, read with the loop's add_reader.

    Where the monitor cannot start (no libudev, netlink refused in a container) it logs why
    and polls every `fallback_interval_s` instead: hotplug then still works, only slower.
    """

    def __init__(self, fallback_interval_s: float) -> None:
        super().__init__(UDEV_SAFETY_POLL_S)
        self._fallback_interval = fallback_interval_s
        self._monitor: Any = None

    async def __aenter__(self) -> UdevWatcher:
        try:
            import pyudev  # noqa: PLC0415 - only where udev is chosen

            monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            monitor.filter_by("input")
            monitor.start()
        except (ImportError, OSError) as exc:
            log.warning(
                "udev monitor unavailable (%s); looking for scanners every %.1f s",
                exc,
                self._fallback_interval,
            )
            self._interval = self._fallback_interval
            return self
        asyncio.get_running_loop().add_reader(monitor.fileno(), self._drain)
        self._monitor = monitor
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            asyncio.get_running_loop().remove_reader(monitor.fileno())

    def _drain(self) -> None:
        changed = False
        try:
            while (device := self._monitor.poll(timeout=0)) is not None:
                if device.sys_name.startswith("event"):
                    log.debug("udev %s %s", device.action, device.device_node)
                    changed = True
        except OSError as exc:  # ENOBUFS: the kernel dropped messages; look at everything
            log.info("udev monitor: %s; looking again", exc)
            changed = True
        if changed:
            self.nudge()


def choose_watcher(mode: Literal["auto", "udev", "poll"], interval_s: float) -> PollingWatcher:
    """udev when asked, or when asked for "auto" and udevd is running; polling otherwise."""
    if mode == "udev" or (mode == "auto" and UDEV_CONTROL.exists()):
        return UdevWatcher(interval_s)
    return PollingWatcher(interval_s)
