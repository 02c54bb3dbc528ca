"""PC/SC contactless readers (ACR122U and kin) through pcscd and pyscard.

Most stores buy CCID readers that pcscd drives; for them a tag's UID comes from the
reader's pseudo-APDU `FF CA 00 00 00` (PC/SC part 3 "get data"). The wait for a card is a
blocking `SCardGetStatusChange`, so it runs in a worker thread; stopping cancels the wait
with `SCardCancel`, which PC/SC allows from another thread.
"""

from __future__ import annotations

import logging
import threading

from smartcard import scard

from edge.devices.settings import PcscReaderSettings
from edge.devices.sink import DeviceRef, DeviceSink, TagRead
from edge.devices.worker_thread import Post, ThreadedReader, run_worker_thread
from edge.errors import EdgeError

log = logging.getLogger(__name__)

GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
_OK = [0x90, 0x00]
_WAIT_MS = 1000
_GONE = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE


def _error(hresult: int) -> str:
    return str(scard.SCardGetErrorMessage(hresult))


class PcscError(EdgeError):
    """pcscd or the reader failed; the worker reconnects."""


class PcscReader(ThreadedReader):
    """One PC/SC reader, chosen by a substring of its name; reports each card presented."""

    def __init__(self, settings: PcscReaderSettings, sink: DeviceSink) -> None:
        super().__init__(DeviceRef(settings.id, "pcsc", settings.lane), sink)
        self._settings = settings
        self._context: int | None = None
        self._lock = threading.Lock()

    async def run(self) -> None:
        await run_worker_thread(f"pcsc:{self._settings.id}", self._work, self._interrupt)

    def _interrupt(self) -> None:
        with self._lock:
            if self._context is not None:
                scard.SCardCancel(self._context)

    def _work(self, stop: threading.Event, post: Post) -> None:
        retry = self._settings.reconnect_s
        while not stop.is_set():
            hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if hresult != scard.SCARD_S_SUCCESS:
                self._status(post, "disconnected", f"pcscd: {_error(hresult)}")
                stop.wait(retry)
                continue
            with self._lock:
                self._context = context
            try:
                detail = self._serve(context, stop, post)
            except PcscError as exc:
                detail = str(exc)
            finally:
                with self._lock:
                    self._context = None
                scard.SCardReleaseContext(context)
            if not stop.is_set():
                self._status(post, "disconnected", detail)
                stop.wait(retry)
        self._status(post, "disconnected", "stopped")

    def _find_reader(self, context: int) -> str | None:
        hresult, readers = scard.SCardListReaders(context, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
            return None
        if hresult != scard.SCARD_S_SUCCESS:
            raise PcscError(f"pcscd: {_error(hresult)}")
        return next((r for r in readers if self._settings.reader in r), None)

    def _serve(self, context: int, stop: threading.Event, post: Post) -> str:
        """Watch the reader until it goes away; returns why."""
        reader = self._find_reader(context)
        if reader is None:
            return f"no PC/SC reader named like {self._settings.reader!r}"
        self._status(post, "connected", reader)
        state = scard.SCARD_STATE_UNAWARE
        seen: int | None = None  # pcsc-lite's card event counter when the last card was read
        while not stop.is_set():
            hresult, states = scard.SCardGetStatusChange(context, _WAIT_MS, [(reader, state)])
            if hresult in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                continue
            if hresult != scard.SCARD_S_SUCCESS:
                return f"{reader}: {_error(hresult)}"
            event_state = states[0][1]
            if event_state & _GONE:
                return f"{reader}: removed"
            state = event_state & ~scard.SCARD_STATE_CHANGED
            # pcsc-lite counts insertions and removals in the high 16 bits, so a card
            # swapped between two polls is still seen as a new presentation
            counter = event_state >> 16
            if not event_state & scard.SCARD_STATE_PRESENT:
                seen = None
            elif counter != seen:
                seen = counter
                self._read_card(context, reader, post)
        return "stopped"

    def _read_card(self, context: int, reader: str, post: Post) -> None:
        hresult, card, protocol = scard.SCardConnect(
            context,
            reader,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        if hresult != scard.SCARD_S_SUCCESS:
            self.read_errors += 1
            log.warning("%s: cannot connect to the card: %s", reader, _error(hresult))
            return
        try:
            hresult, response = scard.SCardTransmit(card, protocol, GET_UID)
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
        if hresult != scard.SCARD_S_SUCCESS or len(response) < 3 or response[-2:] != _OK:
            self.read_errors += 1
            log.warning("%s: the card gave no UID (%s)", reader, _error(hresult))
            return
        self.taps += 1
        uid = bytes(response[:-2]).hex().upper()
        post(self._sink.tap, self._ref, TagRead(uid), self._settings.mode)
