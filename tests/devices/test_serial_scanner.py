"""Serial scanners through real socat pty pairs: suffixes, line settings, unplug and replug."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.devices.serial_reader import SerialScanner
from edge.devices.settings import SerialScannerSettings

from .conftest import PtyPair, RecordingSink


@pytest.fixture
async def running() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def start(tasks: list[asyncio.Task[None]], scanner: SerialScanner) -> None:
    tasks.append(asyncio.create_task(scanner.run(), name="serial"))


@pytest.mark.parametrize(
    ("suffix", "wire"),
    [("cr", b"\r"), ("lf", b"\n"), ("crlf", b"\r\n")],
)
async def test_each_suffix_splits_scans(
    pty_pair: PtyPair,
    sink: RecordingSink,
    running: list[asyncio.Task[None]],
    suffix: str,
    wire: bytes,
) -> None:
    settings = SerialScannerSettings(id="s1", lane="lane-2", port=pty_pair.port, suffix=suffix)
    start(running, SerialScanner(settings, sink))
    await sink.state("connected")
    pty_pair.write(b"]C1010950600013435210ABC\x1d17261231" + wire + b"0042-03-20261122-0007" + wire)
    device, first = await sink.next("scan")
    _, second = await sink.next("scan")
    assert device.lane == "lane-2"
    assert first == "]C1010950600013435210ABC\x1d17261231"
    assert second == "0042-03-20261122-0007"


async def test_line_settings_and_bad_bytes_do_not_stop_the_reader(
    pty_pair: PtyPair, sink: RecordingSink, running: list[asyncio.Task[None]]
) -> None:
    settings = SerialScannerSettings(
        id="s2", lane="lane-1", port=pty_pair.port, baudrate=115200, stopbits=2
    )
    scanner = SerialScanner(settings, sink)
    start(running, scanner)
    await sink.state("connected")
    # written from a thread: the pty buffers are smaller than this burst
    await asyncio.to_thread(pty_pair.write, b"\xff\xfe garbled \xc3\r" + b"x" * 20000 + b"\rgood\r")
    _, garbled = await sink.next("scan")
    assert garbled == "\ufffd\ufffd garbled \ufffd"
    _, good = await sink.next("scan")
    assert good == "good", "an over-long line is dropped, the next scan still arrives"
    assert scanner.garbled == 1


async def test_port_vanishes_and_returns(
    tmp_path: object, sink: RecordingSink, running: list[asyncio.Task[None]]
) -> None:
    pair = PtyPair(Path(str(tmp_path)))
    settings = SerialScannerSettings(id="s3", lane="lane-4", port=pair.port, reconnect_s=0.02)
    start(running, SerialScanner(settings, sink))
    _, _state, detail = await sink.state("disconnected")
    assert pair.port in detail, "a missing port is reported, and the reader keeps trying"
    await pair.start()
    try:
        await sink.state("connected")
        pair.write(b"first\r")
        assert (await sink.next("scan"))[1] == "first"
        await pair.stop()  # unplugged
        await sink.state("disconnected")
        await pair.start()  # and back
        await sink.state("connected")
        pair.write(b"second\r")
        assert (await sink.next("scan"))[1] == "second"
    finally:
        await pair.stop()


async def test_line_settings_the_port_refuses_are_an_error_not_a_crash(
    pty_pair: PtyPair, sink: RecordingSink, running: list[asyncio.Task[None]]
) -> None:
    # Linux ptys accept only 8 data bits without parity, like some USB adapters
    settings = SerialScannerSettings(
        id="s5", lane="lane-1", port=pty_pair.port, bytesize=7, parity="E", reconnect_s=0.02
    )
    start(running, SerialScanner(settings, sink))
    _, _, detail = await sink.state("error")
    assert "line settings" in detail
    assert not running[0].done(), "the reader keeps trying"


def fds_on(device: str) -> list[int]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == device:
                out.append(int(fd))
    return out


async def test_the_port_is_closed_when_the_reader_stops(
    pty_pair: PtyPair, sink: RecordingSink
) -> None:
    """The library closes ports in a task of its own; the reader waits for it, so the port
    is closed by the time the reader's task has ended, not some time later."""
    device = str(Path(pty_pair.port).resolve(strict=True))  # noqa: ASYNC240 - a symlink
    settings = SerialScannerSettings(id="s6", lane="lane-1", port=pty_pair.port)
    task = asyncio.create_task(SerialScanner(settings, sink).run(), name="serial")
    await sink.state("connected")
    assert fds_on(device), "the reader holds the port open"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert fds_on(device) == []
