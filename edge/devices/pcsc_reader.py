"""PC/SC contactless readers (ACR122U and kin) through pcscd and pyscard.

Most stores buy CCID readers that pcscd drives; for them a tag's UID comes from the
reader's pseudo-APDU `FF CA 00 00 00` (PC/SC part 3 "get data"). When the card's ATR names
an ISO 14443-A storage card that needs no keys to read (NTAG, MIFARE Ultralight: NFC Forum
Type 2 tags), its NDEF records are read too, with `FF B0 00 <page> 10` ("read binary");
other cards are tapped with their UID alone. The wait for a card is a blocking
`SCardGetStatusChange`, so it runs in a worker thread; stopping cancels the wait with
`SCardCancel`, which PC/SC allows from another thread. Every tap goes to the sink, which
decides whether it is a manager's badge; the reader itself never logs a UID.
"""

from __future__ import annotations

import logging
import threading

import ndef
from smartcard import scard

from edge.devices.ndef_records import decode_message, type2_ndef_message
from edge.devices.settings import PcscReaderSettings
from edge.devices.sink import DeviceRef, DeviceSink, TagRead
from edge.devices.worker_thread import Post, ThreadedReader, run_worker_thread
from edge.errors import DeviceError

log = logging.getLogger(__name__)

GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
READ_BINARY = [0xFF, 0xB0, 0x00]  # then the first page and 16: four pages of a Type 2 tag
_OK = [0x90, 0x00]
_WAIT_MS = 1000
_GONE = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE
# PC/SC part 3 ATR of a contactless storage card: 3B 8F 80 01, then these historical bytes,
# the card's standard (03: ISO 14443-A part 3) and its two-byte name
_STORAGE_CARD = bytes.fromhex("804F0CA000000306")
_ISO14443A_3 = 0x03
_MIFARE_CLASSIC = {b"\x00\x01", b"\x00\x02", b"\x00\x26"}  # 1K, 4K, Mini: keys needed


def _error(hresult: int) -> str:
    return str(scard.SCardGetErrorMessage(hresult))


def list_readers() -> list[str] | str:
    """The PC/SC reader names pcscd knows, or why it could not say (for operators' listings:
    `edge-gateway devices` and `doctor`)."""
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return f"pcscd refused a context: {_error(hresult)}"
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        return [str(r) for r in readers] if hresult == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


def holds_type2_ndef(atr: bytes) -> bool:
    """Whether the ATR names a card whose NDEF pages read without keys (NFC Forum Type 2)."""
    return (
        len(atr) >= 15
        and atr[4:12] == _STORAGE_CARD
        and atr[12] == _ISO14443A_3
        and atr[13:15] not in _MIFARE_CLASSIC
    )


class PcscError(DeviceError):
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
                self._read_card(context, reader, bytes(states[0][2]), post)
        return "stopped"

    def _read_card(self, context: int, reader: str, atr: bytes, post: Post) -> None:
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
            if hresult != scard.SCARD_S_SUCCESS or len(response) < 3 or response[-2:] != _OK:
                self.read_errors += 1
                log.warning("%s: the card gave no UID (%s)", reader, _error(hresult))
                return
            records = self._read_ndef(card, protocol, reader) if holds_type2_ndef(atr) else []
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
        self.taps += 1
        uid = bytes(response[:-2]).hex().upper()
        post(self._sink.tap, self._ref, TagRead(uid, records), self._settings.mode)

    def _read_ndef(self, card: int, protocol: int, reader: str) -> list[dict[str, str]]:
        """The NDEF records of a Type 2 tag; none when it holds none or they cannot be read."""

        def read_block(page: int) -> bytes | None:
            hresult, response = scard.SCardTransmit(card, protocol, [*READ_BINARY, page, 16])
            if hresult != scard.SCARD_S_SUCCESS or len(response) != 18 or response[-2:] != _OK:
                return None
            return bytes(response[:-2])

        message = type2_ndef_message(read_block)
        try:
            return decode_message(message) if message else []
        except ndef.DecodeError as exc:
            self.read_errors += 1
            log.warning("%s: NDEF read failed: %s", reader, exc)
            return []
