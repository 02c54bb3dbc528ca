"""Choosing how hotplug is noticed, and the udev monitor's setup and teardown on the loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge.devices import hotplug
from edge.devices.hotplug import PollingWatcher, UdevWatcher, choose_watcher


def test_poll_when_asked_or_when_udevd_is_not_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(hotplug, "UDEV_CONTROL", tmp_path / "control")
    assert type(choose_watcher("poll", 1.0)) is PollingWatcher
    assert type(choose_watcher("auto", 1.0)) is PollingWatcher
    (tmp_path / "control").touch()
    assert type(choose_watcher("auto", 1.0)) is UdevWatcher
    assert type(choose_watcher("udev", 1.0)) is UdevWatcher


async def test_nudge_wakes_a_waiting_poller_at_once() -> None:
    watcher = PollingWatcher(interval_s=3600)
    async with watcher:
        waiting = asyncio.create_task(watcher.wait_change())
        watcher.nudge()
        await asyncio.wait_for(waiting, 5)


async def test_udev_monitor_registers_and_removes_its_reader() -> None:
    loop = asyncio.get_running_loop()
    watcher = UdevWatcher(fallback_interval_s=2.0)
    async with watcher:
        assert watcher._monitor is not None, "the netlink monitor runs in the test box"
        fd = watcher._monitor.fileno()
        assert loop.remove_reader(fd), "the netlink socket is watched on the loop"
        loop.add_reader(fd, watcher._drain)
    assert not loop.remove_reader(fd), "leaving the watcher stops watching"


async def test_without_a_udev_monitor_the_watcher_polls_instead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A container may have /run/udev but refuse netlink: hotplug must still work."""
    import pyudev  # noqa: PLC0415

    def refused(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(pyudev.Monitor, "from_netlink", refused)
    watcher = UdevWatcher(fallback_interval_s=0.01)
    async with watcher:
        assert watcher._monitor is None
        await asyncio.wait_for(watcher.wait_change(), 5)  # returns after the fallback interval


async def test_a_failing_monitor_read_still_means_look_again() -> None:
    class Overrun:
        def poll(self, timeout: float) -> None:
            raise OSError(105, "No buffer space available")

    watcher = UdevWatcher(fallback_interval_s=2.0)
    watcher._monitor = Overrun()
    watcher._interval = 3600
    watcher._drain()
    await asyncio.wait_for(watcher.wait_change(), 5)
