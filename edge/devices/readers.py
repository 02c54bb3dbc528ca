"""All configured device readers, run side by side under one owner.

The composition root builds this from `Settings.devices` and a sink (the lane router) and
runs `run()` in its TaskGroup; cancelling it stops every reader in the documented order.

This is the devices' exception boundary. Readers handle the failures hardware has (a port
that vanishes, a reader that stops answering) themselves; anything else that escapes one is
a bug, and a bug in one reader must not stop the other lanes' scanners or the gateway's
refunds. It is logged with its traceback, the device is reported in `error`, and the reader
is started again after `restart_s`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from edge.devices.hotplug import PollingWatcher
from edge.devices.keyboard_scanners import InputFinder, KeyboardScanners
from edge.devices.nfc_reader import Frontend, NfcReader
from edge.devices.pcsc_reader import PcscReader
from edge.devices.serial_reader import SerialScanner
from edge.devices.settings import DevicesSettings
from edge.devices.sink import DeviceRef, DeviceSink

log = logging.getLogger(__name__)

RESTART_S = 5.0


class DeviceReaders:
    """Keyboard-wedge supervisor, serial scanners, NFC and PC/SC readers."""

    def __init__(
        self,
        settings: DevicesSettings,
        sink: DeviceSink,
        *,
        finder: InputFinder | None = None,
        watcher: PollingWatcher | None = None,
        open_nfc: Callable[[str], Frontend] | None = None,
        restart_s: float = RESTART_S,
    ) -> None:
        self._sink = sink
        self._restart_s = restart_s
        self.keyboards = KeyboardScanners(settings, sink, finder, watcher)
        self.serial = [SerialScanner(entry, sink) for entry in settings.serial]
        nfc_kwargs = {} if open_nfc is None else {"open_frontend": open_nfc}
        self.nfc = [NfcReader(entry, sink, **nfc_kwargs) for entry in settings.nfc]
        self.pcsc = [PcscReader(entry, sink) for entry in settings.pcsc]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            name = "devices:keyboards"
            group.create_task(self._supervise(name, None, self.keyboards.run), name=name)
            readers: list[SerialScanner | NfcReader | PcscReader] = [
                *self.serial,
                *self.nfc,
                *self.pcsc,
            ]
            for reader in readers:
                name = f"devices:{reader.ref.kind}:{reader.ref.id}"
                group.create_task(self._supervise(name, reader.ref, reader.run), name=name)

    async def _supervise(
        self, name: str, ref: DeviceRef | None, run: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            try:
                await run()
            except Exception as exc:  # the devices supervisor (see the module docstring)
                log.exception("%s failed; restarting it in %.0f s", name, self._restart_s)
                if ref is not None:
                    self._sink.status(ref, "error", f"reader failed ({exc!r}); restarting")
            else:
                return
            await asyncio.sleep(self._restart_s)
