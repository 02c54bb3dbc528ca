"""Fixtures for the devices slice: an event bus with collectors, socat pty pairs, pcscd."""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
from pydantic import BaseModel

from edge.bus import EventBus
from edge.devices.sink import DeviceRef, DeviceState, TagRead, TapMode
from tests.namespaces import in_private_mounts

E = TypeVar("E", bound=BaseModel)
WAIT_S = 5.0


class Collector:
    """Everything published of one event type, awaited in order; skipped events stay pending."""

    def __init__(self, bus: EventBus, event_type: type[BaseModel]) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.seen: list[Any] = []
        self._pending: list[Any] = []
        bus.subscribe(event_type, self._put)

    def _put(self, event: Any) -> None:
        self.seen.append(event)
        self.queue.put_nowait(event)

    async def next(self, wait_s: float = WAIT_S) -> Any:
        return await self.until(lambda _: True, wait_s)

    async def until(self, predicate: Callable[[Any], bool], wait_s: float = WAIT_S) -> Any:
        for i, event in enumerate(self._pending):
            if predicate(event):
                return self._pending.pop(i)

        async def scan() -> Any:
            while True:
                event = await self.queue.get()
                if predicate(event):
                    return event
                self._pending.append(event)

        return await asyncio.wait_for(scan(), wait_s)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingSink:
    """A device sink that records what readers deliver (for reader-level tests)."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def scan(self, device: DeviceRef, payload: str) -> None:
        self.items.put_nowait(("scan", (device, payload)))

    def tap(self, device: DeviceRef, tag: TagRead, mode: TapMode) -> None:
        self.items.put_nowait(("tap", (device, tag, mode)))

    def status(self, device: DeviceRef, state: DeviceState, detail: str = "") -> None:
        self.items.put_nowait(("status", (device, state, detail)))

    async def next(self, kind: str, wait_s: float = WAIT_S) -> Any:
        """The next item of `kind`, skipping others."""

        async def scan() -> Any:
            while True:
                got, value = await self.items.get()
                if got == kind:
                    return value

        return await asyncio.wait_for(scan(), wait_s)

    async def state(self, wanted: DeviceState, wait_s: float = WAIT_S) -> tuple[Any, ...]:
        async def scan() -> tuple[Any, ...]:
            while True:
                got, value = await self.items.get()
                if got == "status" and value[1] == wanted:
                    return tuple(value)

        return await asyncio.wait_for(scan(), wait_s)


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def collect(bus: EventBus) -> Callable[[type[BaseModel]], Collector]:
    return lambda event_type: Collector(bus, event_type)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


class PtyPair:
    """A socat pty pair: the gateway opens `port`, the test plays the scanner on `feeder`."""

    def __init__(self, folder: Path) -> None:
        self.port = str(folder / "scanner")
        self.feeder = str(folder / "feeder")
        self._proc: asyncio.subprocess.Process | None = None
        self._fd = -1

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            "socat",
            "-d",
            "-d",
            f"pty,link={self.port},raw,echo=0",
            f"pty,link={self.feeder},raw,echo=0",
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._proc.stderr is not None
        async with asyncio.timeout(WAIT_S):
            while b"starting data transfer loop" not in await self._proc.stderr.readline():
                pass
        self._fd = os.open(self.feeder, os.O_WRONLY | os.O_NOCTTY)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    async def stop(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()
        self._proc = None


@pytest.fixture
async def pty_pair(tmp_path: Path) -> AsyncIterator[PtyPair]:
    assert shutil.which("socat"), "socat is installed by scripts/setup"
    pair = PtyPair(tmp_path)
    await pair.start()
    yield pair
    await pair.stop()


def _free_tcp_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A private pcscd with the vpcd virtual reader; yields the port a virtual card dials.

    pcscd 1.9 always listens on /run/pcscd/pcscd.comm, so it runs in its own mount
    namespace on a private, empty /run of its own (a new machine has no /run/pcscd, and a
    machine whose pcscd service runs must not see this one); this process reaches its
    socket through /proc/<pid>/root, named by PCSCLITE_CSOCK_NAME before pyscard connects.
    """
    assert shutil.which("pcscd"), "pcscd is installed by scripts/setup"
    port = _free_tcp_port()
    conf = tmp_path_factory.mktemp("reader.conf.d")
    (conf / "vpcd").write_text(
        'FRIENDLYNAME "Virtual PCD"\n'
        f"DEVICENAME /dev/null:{port}\n"
        "LIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so\n"
        f"CHANNELID {port}\n"
    )
    command = in_private_mounts(
        "mount -t tmpfs -o mode=0755 tmpfs /run && mkdir /run/pcscd"
        f" && exec pcscd --foreground --info -c {conf}"
    )
    if os.geteuid() != 0:
        command.insert(1, "--map-root-user")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
    assert proc.stdout is not None
    os.environ["PCSCLITE_CSOCK_NAME"] = f"/proc/{proc.pid}/root/run/pcscd/pcscd.comm"
    drain: threading.Thread | None = None
    try:
        _wait_for_line(proc.stdout, b"daemon ready", WAIT_S)
        drain = threading.Thread(
            target=lambda: proc.stdout and proc.stdout.read(), name="pcscd-log"
        )
        drain.start()
        yield port
    finally:
        proc.terminate()
        proc.wait()
        if drain is not None:
            drain.join()
        os.environ.pop("PCSCLITE_CSOCK_NAME", None)


def _wait_for_line(stream: IO[bytes], marker: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([stream], [], [], remaining)
        if readable and marker in stream.readline():
            return
    pytest.fail(f"pcscd did not print {marker!r}")


def _wait_reader_empty(reader: str, timeout_s: float) -> bool:
    from smartcard import scard  # noqa: PLC0415

    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS
    try:
        deadline = time.monotonic() + timeout_s
        state = scard.SCARD_STATE_UNAWARE
        while time.monotonic() < deadline:
            hresult, states = scard.SCardGetStatusChange(context, 500, [(reader, state)])
            if hresult == scard.SCARD_S_SUCCESS:
                state = states[0][1] & ~scard.SCARD_STATE_CHANGED
                if state & scard.SCARD_STATE_EMPTY:
                    return True
        return False
    finally:
        scard.SCardReleaseContext(context)


@pytest.fixture
def vpcd(pcscd: int) -> Iterator[int]:
    """The virtual reader's card port; after the test, waits until pcscd sees no card."""
    yield pcscd
    assert _wait_reader_empty("Virtual PCD 00 00", WAIT_S), "a virtual card was left in the reader"
