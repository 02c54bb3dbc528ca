"""Keyboard-wedge reading through python-evdev's async read path over a pipe of raw events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from evdev import ecodes as e

from edge.devices.key_decoder import KeyDecoder
from edge.devices.keyboard_reader import KeyboardReader
from edge.devices.keymaps import load_keymap
from edge.devices.wedge_assembler import ScanAssembler, Terminator
from edge.errors import DeviceLostError
from edge.scan.payload import MAX_SCAN_CHARS

from .evdev_pipe import KeyWriter, pipe_device

GS1_SCAN = "]C1010950600013435210AB-12/x\x1d17261231"


class Harness:
    def __init__(
        self,
        layout: str,
        terminator: Terminator = "enter",
        timeout_s: float = 0.05,
        stale_s: float = 1.0,
    ) -> None:
        self.source, self.writer = pipe_device("/dev/input/event9", layout)
        self.scans: asyncio.Queue[str] = asyncio.Queue()
        self.assembler = ScanAssembler(terminator, timeout_s, stale_s)
        self.reader = KeyboardReader(
            self.source,
            "event9",
            KeyDecoder(load_keymap(layout), numlock=True),
            self.assembler,
            self.scans.put_nowait,
        )
        self.task = asyncio.create_task(self.reader.run(), name="test-reader")

    async def next_scan(self) -> str:
        return await asyncio.wait_for(self.scans.get(), 5)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.writer.close()
        self.source.close()


@pytest.fixture
async def make() -> AsyncIterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for harness in made:
        await harness.close()


@pytest.mark.parametrize(
    ("layout", "text"),
    [
        ("us", GS1_SCAN),
        ("de", GS1_SCAN + "zZyY@€"),
        ("fr", GS1_SCAN + "aAqQé@&"),
        ("gb", GS1_SCAN + '£#"@'),
    ],
)
async def test_scan_decoded_on_each_layout(make: list[Harness], layout: str, text: str) -> None:
    h = Harness(layout)
    make.append(h)
    h.writer.type(text + "\r" + "R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0\r")
    assert await h.next_scan() == text
    assert await h.next_scan() == "R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0"


async def test_tab_terminator(make: list[Harness]) -> None:
    h = Harness("us", "tab")
    make.append(h)
    h.writer.type("4006381333931\t")
    assert await h.next_scan() == "4006381333931"


async def test_no_terminator_flushes_after_inter_key_timeout(make: list[Harness]) -> None:
    h = Harness("us", "none", timeout_s=0.03)
    make.append(h)
    h.writer.type("09506000134352")
    assert await h.next_scan() == "09506000134352"
    h.writer.type("12345670")
    assert await h.next_scan() == "12345670"


async def test_partial_without_terminator_is_discarded_not_prefixed(make: list[Harness]) -> None:
    h = Harness("us", "enter", stale_s=0.03)
    make.append(h)
    h.writer.type("GARBA")
    expired = asyncio.get_running_loop().create_future()
    original = h.assembler.expire

    def expire() -> str | None:
        result = original()
        if not expired.done():
            expired.set_result(result)
        return result

    h.assembler.expire = expire  # type: ignore[method-assign]
    assert await asyncio.wait_for(expired, 5) is None
    assert h.assembler.discarded == 1
    h.writer.type("CLEAN\r")
    assert await h.next_scan() == "CLEAN"


async def test_pauses_are_judged_by_the_kernel_stamps_not_by_when_the_loop_reads(
    make: list[Harness],
) -> None:
    """A busy loop may read two scans in one batch: the stamps still show the pause."""
    h = Harness("us", "none", timeout_s=0.06)
    make.append(h)
    t0 = time.time()
    h.writer.write(h.writer.text("4006381333931", at=t0) + h.writer.text("12345670", at=t0 + 0.5))
    assert await h.next_scan() == "4006381333931"
    assert await h.next_scan() == "12345670"

    stale = Harness("us", "enter", stale_s=1.0)
    make.append(stale)
    stale.writer.write(stale.writer.text("GARB", at=t0) + stale.writer.text("CLEAN\r", at=t0 + 2))
    assert await stale.next_scan() == "CLEAN"
    assert stale.assembler.discarded == 1


async def test_an_over_long_scan_is_dropped_whole(make: list[Harness]) -> None:
    h = Harness("us")
    make.append(h)
    long_read = h.writer.text("9" * (MAX_SCAN_CHARS + 10) + "\r" + "next\r")
    await asyncio.to_thread(h.writer.write, long_read)  # more than a pipe holds
    assert await h.next_scan() == "next", "the tail of the long read is not a scan of its own"
    assert h.assembler.overflowed == 1


async def test_a_cancelled_reader_leaves_nothing_registered_on_the_loop(
    make: list[Harness],
) -> None:
    h = Harness("us")
    make.append(h)
    h.writer.type("first\r")
    assert await h.next_scan() == "first"  # the next read is now pending on the loop
    h.task.cancel()
    await asyncio.gather(h.task, return_exceptions=True)
    loop = asyncio.get_running_loop()
    assert not loop.remove_reader(h.source.fileno()), "the pending read was unregistered"


async def test_syn_dropped_drops_the_partial_and_resyncs_modifiers(make: list[Harness]) -> None:
    h = Harness("us")
    make.append(h)
    w: KeyWriter = h.writer
    # half a scan, then the kernel reports lost events while Shift was held
    data = w.text("HALF")
    data += w.event(e.EV_KEY, e.KEY_LEFTSHIFT, 1) + w.syn()
    data += w.event(e.EV_SYN, e.SYN_DROPPED, 0)
    data += w.event(e.EV_KEY, e.KEY_X, 1)  # inside the dropped window: ignored
    data += w.syn()
    h.source.held_keys = []  # the kernel says: nothing is held any more
    data += w.text("ok1\r")
    w.write(data)
    assert await h.next_scan() == "ok1"
    assert h.reader.syn_dropped == 1
    assert h.assembler.discarded == 1


async def test_unknown_key_codes_and_other_event_types_do_not_stop_the_reader(
    make: list[Harness],
) -> None:
    h = Harness("us")
    make.append(h)
    w = h.writer
    junk = (
        w.event(e.EV_KEY, 700, 1)
        + w.event(e.EV_KEY, 700, 0)
        + w.event(e.EV_MSC, e.MSC_SCAN, 458756)
    )
    junk += w.event(e.EV_LED, e.LED_NUML, 1) + w.event(e.EV_KEY, e.KEY_A, 7) + w.syn()
    w.write(junk + w.text("after-junk\r"))
    assert await h.next_scan() == "after-junk"


async def test_device_gone_ends_the_reader_with_device_lost() -> None:
    source, writer = pipe_device("/dev/input/event3")
    got: list[str] = []
    reader = KeyboardReader(
        source,
        "event3",
        KeyDecoder(load_keymap("us"), numlock=True),
        ScanAssembler("enter", 0.05),
        got.append,
    )
    task = asyncio.create_task(reader.run())
    writer.type("last\r")
    writer.close()  # unplugged
    with pytest.raises(DeviceLostError, match="end of input"):
        await asyncio.wait_for(task, 5)
    assert got == ["last"]
    source.close()


async def test_read_error_from_the_node_is_device_lost() -> None:
    """ENODEV from the read is how a real node reports an unplug."""
    source, writer = pipe_device("/dev/input/event4")
    decoder = KeyDecoder(load_keymap("us"), numlock=True)
    reader = KeyboardReader(source, "event4", decoder, ScanAssembler("enter", 0.05), print)
    loop = asyncio.get_running_loop()

    def unplugged_read() -> asyncio.Future[object]:
        future: asyncio.Future[object] = loop.create_future()
        future.set_exception(OSError(19, "No such device"))
        return future

    source.async_read = unplugged_read  # type: ignore[method-assign]
    with pytest.raises(DeviceLostError, match="No such device"):
        await asyncio.wait_for(reader.run(), 5)
    writer.close()
    source.close()


async def test_spurious_wakeup_is_not_an_unplug(make: list[Harness]) -> None:
    h = Harness("us")
    make.append(h)
    real_read = h.source.async_read
    loop = asyncio.get_running_loop()
    calls = 0

    def read_once_would_block() -> asyncio.Future[object]:
        nonlocal calls
        calls += 1
        if calls == 1:
            future: asyncio.Future[object] = loop.create_future()
            future.set_exception(BlockingIOError(11, "Resource temporarily unavailable"))
            return future
        return real_read()

    h.task.cancel()
    await asyncio.gather(h.task, return_exceptions=True)
    h.source.async_read = read_once_would_block  # type: ignore[method-assign]
    h.task = asyncio.create_task(h.reader.run())
    h.writer.type("still-here\r")
    assert await h.next_scan() == "still-here"


async def test_node_gone_while_resyncing_after_lost_events_is_device_lost() -> None:
    source, writer = pipe_device("/dev/input/event7")
    decoder = KeyDecoder(load_keymap("us"), numlock=True)
    reader = KeyboardReader(source, "event7", decoder, ScanAssembler("enter", 0.05), print)

    def gone() -> list[int]:
        raise OSError(19, "No such device")

    source.active_keys = gone  # type: ignore[method-assign]
    writer.write(writer.event(e.EV_SYN, e.SYN_DROPPED, 0) + writer.syn())
    with pytest.raises(DeviceLostError, match="No such device"):
        await asyncio.wait_for(reader.run(), 5)
    writer.close()
    source.close()
