"""All configured device readers, run side by side under one owner.

The composition root builds this from `Settings.devices` and a sink (the lane router) and
runs `run()` in its TaskGroup; cancelling it stops every reader in the documented order.

This is the devices' exception boundary. Readers handle the failures hardware has (a port
that vanishes, a reader that stops answering) themselves; anything else that escapes one is
a bug, and a bug in one reader must not stop the other lanes' scanners or the gateway's
refunds. The gateway's supervisor (`edge.supervise`) logs it with its traceback and counts
it, the device is reported in `error`, and the reader is started again with backoff from
`restart_s`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from edge.devices.settings import DevicesSettings
from edge.devices.sink import DeviceRef, DeviceSink
from edge.supervise import supervised

if TYPE_CHECKING:
    from edge.devices.hotplug import PollingWatcher
    from edge.devices.keyboard_scanners import InputFinder, KeyboardScanners
    from edge.devices.nfc_reader import Frontend, NfcReader
    from edge.devices.pcsc_reader import PcscReader
    from edge.devices.serial_reader import SerialScanner

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
        restarts: Counter[str] | None = None,
    ) -> None:
        self._sink = sink
        self._restart_s = restart_s
        self.restarts: Counter[str] = restarts if restarts is not None else Counter()
        # A kind's modules and library (evdev and xkbcommon, pyserial, nfcpy, pyscard, and
        # biip through the payload parser) are imported only when a device of that kind is
        # configured, so a gateway without scanners does not carry them in memory.
        self.keyboards: KeyboardScanners | None = None
        if settings.keyboards:
            from edge.devices.keyboard_scanners import KeyboardScanners  # noqa: PLC0415

            self.keyboards = KeyboardScanners(settings, sink, finder, watcher)
        self.serial: list[SerialScanner] = []
        if settings.serial:
            from edge.devices.serial_reader import SerialScanner  # noqa: PLC0415

            self.serial = [SerialScanner(entry, sink) for entry in settings.serial]
        self.nfc: list[NfcReader] = []
        if settings.nfc:
            from edge.devices.nfc_reader import NfcReader  # noqa: PLC0415

            nfc_kwargs = {} if open_nfc is None else {"open_frontend": open_nfc}
            self.nfc = [NfcReader(entry, sink, **nfc_kwargs) for entry in settings.nfc]
        self.pcsc: list[PcscReader] = []
        if settings.pcsc:
            from edge.devices.pcsc_reader import PcscReader  # noqa: PLC0415

            self.pcsc = [PcscReader(entry, sink) for entry in settings.pcsc]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            if self.keyboards is not None:
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
        def failed(exc: Exception) -> None:
            if ref is not None:
                self._sink.status(ref, "error", f"reader failed ({exc!r}); restarting")

        await supervised(name, run, self.restarts, first_s=self._restart_s, on_failure=failed)
