"""The gateway under a systemd-like notify socket: READY=1 only once everything runs, STATUS=
lines with the HQ link and the outbox, and WATCHDOG=1 pings that stop while the event loop is
stuck or the ledger writer is gone (so systemd's `WatchdogSec` restarts the gateway).

The gateway runs in-process on its own event loop thread, as `edge-gateway run` runs it (a
uvloop loop), so a test can wedge that loop and reach its ledger writer's thread; the last
test runs the real command with the variables systemd sets.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import inspect
import json
import re
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from edge.app import run_gateway  # noqa: TID251 - the test runs the composition root itself
from edge.sd_notify import Notifier, watchdog_usec
from edge.settings import Settings, load_settings
from tests.core.conftest import sale
from tests.core.daemon import CLI, ROOT, ReadySocket, add_client, env_for, free_port

WATCHDOG_USEC = 400_000  # systemd's WatchdogSec=0.4: a beat every 0.2 s
BEAT_S = WATCHDOG_USEC / 2_000_000
LONG_LIVED_LOOPS = ("ledger-housekeeping", "lane-router")  # the devices loop ends at once
# when no device is configured


def pings(messages: list[str]) -> int:
    return sum("WATCHDOG=1" in m.splitlines() for m in messages)


def status_of(message: str) -> str:
    return next(line for line in message.splitlines() if line.startswith("STATUS="))


class WatchingNotifier(Notifier):
    """The real notifier, which also notes, when it sends READY=1, which tasks run on the
    gateway's loop and whether each has started (run up to its first await)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, WATCHDOG_USEC)
        self.tasks_at_ready: dict[str, str] = {}

    def notify(self, message: str) -> None:
        if "READY=1" in message.splitlines():
            self.tasks_at_ready = {
                task.get_name(): inspect.getcoroutinestate(task.get_coro())
                for task in asyncio.all_tasks()
            }
        super().notify(message)


class GatewayThread:
    """`run_gateway` on its own uvloop loop in a thread, stopped as on SIGTERM."""

    def __init__(self, settings: Settings, notifier: Notifier) -> None:
        self.settings = settings
        self.notifier = notifier
        self.aio_loop = uvloop.new_event_loop()
        self.stop = asyncio.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="gateway-under-test")

    def _main(self) -> None:
        try:
            self.aio_loop.run_until_complete(run_gateway(self.settings, self.stop, self.notifier))
        except BaseException as exc:  # handed to the test thread by close()
            self.failure = exc
        finally:
            self.aio_loop.close()

    def start(self) -> None:
        self.threads_before = set(threading.enumerate())
        self.thread.start()

    def new_threads(self, prefix: str) -> list[threading.Thread]:
        """Threads named `prefix...` that this gateway started."""
        return [
            t for t in set(threading.enumerate()) - self.threads_before if t.name.startswith(prefix)
        ]

    def close(self) -> None:
        if self.thread.is_alive():
            self.aio_loop.call_soon_threadsafe(self.stop.set)
            self.thread.join(60)
        assert not self.thread.is_alive(), "the gateway did not stop within 60 s"
        if self.failure is not None:
            raise self.failure


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[ReadySocket]:
    sock = ReadySocket(tmp_path)
    yield sock
    sock.close()


@pytest.fixture
def gateway(tmp_path: Path, notify: ReadySocket) -> Iterator[GatewayThread]:
    settings = load_settings(
        environ={},
        data_dir=str(tmp_path / "data"),
        lan={"bind": "127.0.0.1", "port": free_port()},
        hq={"enabled": False},
        devices={"hotplug": "poll", "input_dir": str(tmp_path / "no-input")},
    )
    running = GatewayThread(settings, WatchingNotifier(notify.path))
    running.start()
    try:
        yield running
    finally:
        running.close()


def test_ready_comes_once_the_api_answers_and_every_loop_runs(
    gateway: GatewayThread, notify: ReadySocket
) -> None:
    ready = notify.wait_for_field("READY=1")
    with urllib.request.urlopen(
        f"http://127.0.0.1:{gateway.settings.lan.port}/readyz", timeout=10
    ) as answer:
        body = json.load(answer)
    assert body["ready"] is True
    assert "link not-configured" in status_of(ready), ready
    assert "outbox 0 pending" in status_of(ready), ready
    assert isinstance(gateway.notifier, WatchingNotifier)
    started = gateway.notifier.tasks_at_ready
    for name in LONG_LIVED_LOOPS:
        assert started.get(name) == inspect.CORO_SUSPENDED, (name, started)


def post(url: str, body: bytes, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def test_the_status_line_shows_the_outbox_depth_and_its_oldest_event(
    gateway: GatewayThread, notify: ReadySocket
) -> None:
    notify.wait_for_field("READY=1")
    creds = add_client(env_for(gateway.settings.data_dir, gateway.settings.lan.port))
    base = f"http://127.0.0.1:{gateway.settings.lan.port}"
    basic = base64.b64encode(f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
    token = post(
        f"{base}/oauth/token",
        b"grant_type=client_credentials",
        {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )["access_token"]
    post(
        f"{base}/v1/sales",
        json.dumps(sale()).encode(),
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    # no HQ link here: the sale's event waits in the outbox
    message = notify.wait_for("outbox 1 pending, oldest", timeout=10)
    status = status_of(message)
    assert re.search(r"outbox 1 pending, oldest \d+ s;", status), status
    assert "WATCHDOG=1" in message.splitlines()  # a waiting outbox is no reason to restart


def test_pings_while_healthy_and_none_while_the_event_loop_is_stuck(
    gateway: GatewayThread, notify: ReadySocket
) -> None:
    notify.wait_for_field("READY=1")
    assert pings(notify.during(8 * BEAT_S)) >= 3

    entered, release = threading.Event(), threading.Event()

    def wedge() -> None:  # a blocking call on the event loop, as a bug would make one
        entered.set()
        release.wait(60)

    gateway.aio_loop.call_soon_threadsafe(wedge)
    assert entered.wait(10)
    notify.drain()
    assert notify.during(5 * BEAT_S) == []  # nothing at all: no pings, no status

    release.set()
    notify.wait_for_field("WATCHDOG=1", timeout=10)
    assert pings(notify.during(8 * BEAT_S)) >= 3


class WriterCrash(Exception):
    """What a bug that escapes the ledger writer's loop looks like from its thread."""


def crash_the_writer_thread(writer: threading.Thread) -> None:
    """Raise WriterCrash in the writer's thread (CPython's PyThreadState_SetAsyncExc): the
    thread is idle, waiting for a job, and raises it as soon as the next job wakes it."""
    assert writer.ident is not None
    hit = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(writer.ident), ctypes.py_object(WriterCrash)
    )
    assert hit == 1


def test_pings_stop_when_the_ledger_writer_dies(
    gateway: GatewayThread, notify: ReadySocket
) -> None:
    notify.wait_for_field("READY=1")
    (writer,) = gateway.new_threads("ledger-writer")
    assert pings(notify.during(4 * BEAT_S)) >= 1

    crash_the_writer_thread(writer)
    unhealthy = status_of(notify.wait_for("UNHEALTHY", timeout=10))
    assert "ledger writer" in unhealthy, unhealthy
    later = notify.during(6 * BEAT_S)
    assert pings(later) == 0, later
    assert later, "the event loop still runs: status lines go on"
    assert all("UNHEALTHY: ledger writer" in status_of(m) for m in later), later


def test_watchdog_variables_read_as_sd_watchdog_enabled_reads_them() -> None:
    assert watchdog_usec({}, 42) == 0
    assert watchdog_usec({"WATCHDOG_USEC": "30000000"}, 42) == 30_000_000
    assert watchdog_usec({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == 30_000_000
    # meant for another process (a child that inherited the variables): no pings
    assert watchdog_usec({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"}, 42) == 0
    assert watchdog_usec({"WATCHDOG_USEC": "soon"}, 42) == 0
    assert watchdog_usec({"WATCHDOG_USEC": "0"}, 42) == 0
    assert watchdog_usec({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, 42) == 0
    assert Notifier(None, 30_000_000).watchdog_interval_s is None  # no socket, no pings
    assert Notifier("/run/notify", 30_000_000).watchdog_interval_s == 30.0


def test_the_daemon_pings_with_the_variables_systemd_sets(
    tmp_path: Path, notify: ReadySocket
) -> None:
    env = env_for(
        tmp_path / "data",
        free_port(),
        NOTIFY_SOCKET=notify.path,
        WATCHDOG_USEC=str(WATCHDOG_USEC),
    )
    # systemd names the main process in WATCHDOG_PID: the shell's pid is the daemon's after exec
    command = 'WATCHDOG_PID=$$ exec "$@"'
    with (tmp_path / "daemon.log").open("wb") as log:
        proc = subprocess.Popen(
            ["sh", "-c", command, "sh", *CLI, "run"], env=env, cwd=ROOT, stdout=log, stderr=log
        )
    try:
        ready = notify.wait_for_field("READY=1")
        assert "link not-configured" in status_of(ready)
        assert pings(notify.during(8 * BEAT_S)) >= 3
        proc.send_signal(signal.SIGTERM)
        notify.wait_for_field("STOPPING=1")
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()
