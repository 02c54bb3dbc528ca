"""Reading one keyboard-wedge scanner through python-evdev's asyncio API.

The reader owns nothing but its read loop: the supervisor opens, grabs and closes the
device. Lost events (SYN_DROPPED) drop the partial scan and resync the modifier state from
the kernel; a vanished device ends the loop with DeviceLostError.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from evdev import ecodes

from edge.devices.key_decoder import KeyDecoder
from edge.devices.wedge_assembler import ScanAssembler
from edge.errors import DeviceLostError

log = logging.getLogger(__name__)


class InputSource(Protocol):
    """The part of `evdev.InputDevice` the gateway uses (an event node, opened)."""

    def fileno(self) -> int: ...

    def async_read(self) -> asyncio.Future[Any]: ...

    def active_keys(self) -> list[int]: ...

    def grab(self) -> None: ...

    def ungrab(self) -> None: ...

    def close(self) -> None: ...


class KeyboardReader:
    """Decodes a device's key events into scans and calls `on_scan` for each one."""

    def __init__(
        self,
        source: InputSource,
        label: str,
        decoder: KeyDecoder,
        assembler: ScanAssembler,
        on_scan: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._label = label
        self._decoder = decoder
        self._assembler = assembler
        self._on_scan = on_scan
        self._clock = clock
        self._dropping = False
        self.syn_dropped = 0

    async def run(self) -> None:
        """Read until the device goes away (raises DeviceLostError) or the task is cancelled."""
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                if pending is None:
                    pending = self._source.async_read()
                deadline = self._assembler.deadline()
                timeout = None if deadline is None else max(0.0, deadline - self._clock())
                # asyncio.wait leaves the read pending on timeout: cancelling it would lose
                # the batch evdev is about to hand over.
                done, _ = await asyncio.wait({pending}, timeout=timeout)
                if not done:
                    self._expire()
                    continue
                batch, pending = pending, None
                self._handle_batch(batch)
        finally:
            if pending is not None and not pending.done():
                # Unregister first: evdev's callback would otherwise fire into the cancelled
                # future during the supervisor's teardown and log an InvalidStateError.
                if (fd := self._source.fileno()) >= 0:
                    asyncio.get_running_loop().remove_reader(fd)
                pending.cancel()

    def _handle_batch(self, batch: asyncio.Future[Any]) -> None:
        try:
            events = list(batch.result())
        except BlockingIOError:  # woken with nothing to read: not an unplug
            return
        except OSError as exc:
            msg = f"{self._label}: {exc.strerror or exc}"
            raise DeviceLostError(msg) from exc
        if not events:  # readable but nothing to read: the node is gone
            msg = f"{self._label}: end of input"
            raise DeviceLostError(msg)
        for event in events:
            self._handle(event.type, event.code, event.value, event.sec + event.usec / 1e6)

    def _handle(self, etype: int, code: int, value: int, typed_at: float) -> None:
        if etype == ecodes.EV_SYN:
            if code == ecodes.SYN_DROPPED:
                self._dropping = True
                self.syn_dropped += 1
                if self._assembler.discard():
                    log.warning("%s: input events lost; partial scan dropped", self._label)
            elif code == ecodes.SYN_REPORT and self._dropping:
                self._dropping = False
                self._decoder.resync(self._held_keys())
            return
        if self._dropping or etype != ecodes.EV_KEY:
            return
        text = self._decoder.feed(code, value)
        if text:
            self._deliver(self._assembler.push(text, self._clock(), typed_at))

    def _held_keys(self) -> list[int]:
        try:
            return self._source.active_keys()
        except OSError as exc:  # EVIOCGKEY on a node that just went away
            msg = f"{self._label}: {exc.strerror or exc}"
            raise DeviceLostError(msg) from exc

    def _expire(self) -> None:
        scan = self._assembler.expire()
        if scan is not None:
            self._deliver([scan])
        else:
            log.warning("%s: partial scan without terminator discarded", self._label)

    def _deliver(self, scans: Iterable[str]) -> None:
        for scan in scans:
            self._on_scan(scan)
