"""NFC readers through nfcpy, in a worker thread bridged to asyncio.

nfcpy's `connect()` blocks while it polls for tags, so each reader runs it in its own
thread; every tap (tag UID and NDEF records) is posted to the loop. A tag is reported once
per presentation: the reader waits for it to leave before polling again. `path` is nfcpy's
device path: `usb` for the first USB reader, `usb:054c:06c3` for a model, `tty:USB0`, or
`udp:host:port` for nfcpy's simulated radio. Every tap goes to the sink, which decides
whether it is a manager's badge; the reader itself never logs a UID.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import ndef
import nfc
import nfc.clf
import nfc.tag

from edge.devices.ndef_records import record_fields
from edge.devices.settings import NfcReaderSettings
from edge.devices.sink import DeviceRef, DeviceSink, TagRead
from edge.devices.worker_thread import Post, ThreadedReader, run_worker_thread

log = logging.getLogger(__name__)

Frontend = Any  # nfc.ContactlessFrontend; nfcpy ships no type information


def read_tag(tag: Any) -> tuple[TagRead, bool]:
    """UID and NDEF records of an activated nfcpy tag; the flag says the NDEF read failed."""
    uid = bytes(tag.identifier).hex().upper()
    try:
        records = [record_fields(r) for r in tag.ndef.records] if tag.ndef else []
    except (nfc.tag.TagCommandError, nfc.clf.CommunicationError, ndef.DecodeError) as exc:
        log.warning("NDEF read failed: %s", exc)
        return TagRead(uid), True
    return TagRead(uid, records), False


class NfcReader(ThreadedReader):
    """One nfcpy reader; reconnects when it is unplugged and plugged back."""

    def __init__(
        self,
        settings: NfcReaderSettings,
        sink: DeviceSink,
        open_frontend: Callable[[str], Frontend] = nfc.ContactlessFrontend,
    ) -> None:
        super().__init__(DeviceRef(settings.id, "nfc", settings.lane), sink)
        self._settings = settings
        self._open_frontend = open_frontend

    async def run(self) -> None:
        await run_worker_thread(f"nfc:{self._settings.id}", self._work)

    def _work(self, stop: threading.Event, post: Post) -> None:
        cfg = self._settings
        while not stop.is_set():
            try:
                clf = self._open_frontend(cfg.path)
            except (OSError, ValueError) as exc:  # no such reader (yet), or busy
                self._status(post, "disconnected", f"{cfg.path}: {exc}")
                stop.wait(cfg.reconnect_s)
                continue
            self._status(post, "connected", str(getattr(clf, "device", None) or cfg.path))
            try:
                healthy = self._poll(clf, stop, post)
            finally:
                clf.close()
            if not healthy:
                self._status(post, "disconnected", f"{cfg.path}: reader stopped answering")
                stop.wait(cfg.reconnect_s)
        self._status(post, "disconnected", "stopped")

    def _poll(self, clf: Frontend, stop: threading.Event, post: Post) -> bool:
        """Poll for tags until stopped (True) or the reader fails (False)."""

        def on_connect(tag: Any) -> bool:
            read, failed = read_tag(tag)
            self.taps += 1
            self.read_errors += failed
            post(self._sink.tap, self._ref, read, self._settings.mode)
            return True  # hold until the tag leaves: one report per presentation

        options = {
            "targets": list(self._settings.targets),
            "on-connect": on_connect,
            "iterations": 1,
            "interval": 0.1,
            "beep-on-connect": True,
        }
        while not stop.is_set():
            try:
                result = clf.connect(rdwr=options, terminate=stop.is_set)
            except (OSError, nfc.clf.Error) as exc:
                log.warning("%s: %s", self._settings.id, exc)
                return False
            if result is False and not stop.is_set():  # nfcpy swallowed an I/O error
                return False
        return True
