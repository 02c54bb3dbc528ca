"""Serial scanners through pyserial-asyncio-fast: one line per scan, reconnect forever.

The port is opened off the loop (the library runs pyserial's open in an executor). A
vanished port (USB serial adapter unplugged, pty gone) ends the read with EOF or an error;
the reader reports it and tries again every `reconnect_s` until the port returns.
"""

from __future__ import annotations

import asyncio
import logging
import termios
from typing import Final

import serial
import serial_asyncio_fast

from edge.devices.settings import SerialScannerSettings
from edge.devices.sink import DeviceRef, DeviceSink, DeviceState
from edge.scan.payload import MAX_SCAN_CHARS

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
_SUFFIX: Final = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}
_STOPBITS: Final = {
    1: serial.STOPBITS_ONE,
    1.5: serial.STOPBITS_ONE_POINT_FIVE,
    2: serial.STOPBITS_TWO,
}


class SerialScanner:
    """Reads one configured serial scanner and hands each line to the sink."""

    def __init__(self, settings: SerialScannerSettings, sink: DeviceSink) -> None:
        self._settings = settings
        self._sink = sink
        self._ref = DeviceRef(settings.id, "serial", settings.lane)
        self._state: DeviceState | None = None
        self.garbled = 0

    def _report(self, state: DeviceState, detail: str) -> None:
        if state != self._state:
            self._state = state
            self._sink.status(self._ref, state, detail)

    @property
    def ref(self) -> DeviceRef:
        return self._ref

    async def run(self) -> None:
        cfg = self._settings
        while True:
            try:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=cfg.port,
                    baudrate=cfg.baudrate,
                    bytesize=cfg.bytesize,
                    parity=cfg.parity,
                    stopbits=_STOPBITS[cfg.stopbits],
                    limit=MAX_SCAN_CHARS * 4,
                    timeout=0,  # applied while opening: a refusing port is closed again at once
                )
            except (OSError, serial.SerialException) as exc:  # not there (yet)
                self._report("disconnected", f"{cfg.port}: {exc}")
                await asyncio.sleep(cfg.reconnect_s)
                continue
            except (termios.error, ValueError) as exc:  # there, but refuses the line settings
                self._report("error", f"{cfg.port}: cannot apply line settings: {exc}")
                await asyncio.sleep(cfg.reconnect_s)
                continue
            log.info("%s: reading %s at %d baud", cfg.id, cfg.port, cfg.baudrate)
            self._report("connected", cfg.port)
            try:
                detail = await self._read_lines(reader)
            finally:
                await self._close(writer)
            self._report("disconnected", detail)
            await asyncio.sleep(cfg.reconnect_s)

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        """Close the port and wait until it is closed.

        The library flushes and closes the port in a task of its own; waiting for it keeps
        that task owned and the descriptor closed before the port is opened again (or the
        gateway stops). A port that vanished reports its error here once more: ignored. The
        wait is bounded, in case a wedged adapter never finishes draining.
        """
        writer.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await writer.wait_closed()
        except OSError:  # SerialException is an OSError
            pass
        except TimeoutError:
            log.warning("the serial port did not close within %.0f s", CLOSE_TIMEOUT_S)

    async def _read_lines(self, reader: asyncio.StreamReader) -> str:
        """Deliver lines until the port goes away; returns why it ended."""
        suffix = _SUFFIX[self._settings.suffix]
        skipping = False  # inside an over-long line: drop everything up to its suffix
        while True:
            try:
                try:
                    line = await reader.readuntil(suffix)
                except asyncio.LimitOverrunError as exc:
                    await reader.readexactly(exc.consumed)
                    if not skipping:
                        self.garbled += 1
                        log.warning("%s: over-long line without suffix dropped", self._settings.id)
                    skipping = True
                    continue
            except asyncio.IncompleteReadError:
                return f"{self._settings.port}: closed"
            except (OSError, serial.SerialException) as exc:
                return f"{self._settings.port}: {exc}"
            if skipping:
                skipping = False
                continue
            text = line[: -len(suffix)].decode(self._settings.encoding, errors="replace")
            text = text.strip("\r\n")
            if text:
                self._sink.scan(self._ref, text)
