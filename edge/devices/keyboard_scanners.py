"""The keyboard-wedge supervisor: attach readers to configured scanners as they appear.

Each matched event node gets one task that opens, grabs and reads it; when the device goes
(unplug, USB reset) the task tears down in a fixed order and ends, and the next look finds
the device again when it returns. Unplug is an event, never a crash; so is a bug in one
device's decoding, which is reported as that device's `error` while the others read on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from edge.devices.hotplug import PollingWatcher, choose_watcher
from edge.devices.input_discovery import EvdevFinder, InputDeviceInfo, match_scanner
from edge.devices.key_decoder import KeyDecoder
from edge.devices.keyboard_reader import InputSource, KeyboardReader
from edge.devices.keymaps import KeymapError, load_keymap
from edge.devices.settings import DevicesSettings, KeyboardScannerSettings
from edge.devices.sink import DeviceRef, DeviceSink, DeviceState
from edge.devices.wedge_assembler import ScanAssembler
from edge.errors import DeviceLostError

log = logging.getLogger(__name__)


class InputFinder(Protocol):
    """Lists key-capable event nodes and opens one (both blocking: run off the loop)."""

    def scan(self) -> list[InputDeviceInfo]: ...

    def open(self, info: InputDeviceInfo) -> InputSource: ...


class KeyboardScanners:
    """Keeps one reader per present, configured keyboard-wedge scanner."""

    def __init__(
        self,
        settings: DevicesSettings,
        sink: DeviceSink,
        finder: InputFinder | None = None,
        watcher: PollingWatcher | None = None,
    ) -> None:
        self._entries = settings.keyboards
        self._sink = sink
        self._finder = finder or EvdevFinder(settings.input_dir)
        self._settings = settings
        self._watcher = watcher
        self._attached: dict[str, DeviceRef] = {}
        self._failed: set[tuple[str, str]] = set()

    @property
    def attached(self) -> dict[str, DeviceRef]:
        """Event node path -> the configured device it is serving now."""
        return dict(self._attached)

    async def run(self) -> None:
        if not self._entries:
            return
        if self._watcher is None:  # chosen here: it looks at the filesystem for udevd
            self._watcher = choose_watcher(self._settings.hotplug, self._settings.poll_interval_s)
        watcher = self._watcher
        async with watcher, asyncio.TaskGroup() as readers:
            while True:
                await self._look(readers)
                await watcher.wait_change()

    async def _look(self, readers: asyncio.TaskGroup) -> None:
        try:
            present = await asyncio.to_thread(self._finder.scan)
        except OSError as exc:
            log.warning("cannot list input devices: %s", exc)
            return
        present_keys = {(info.path, info.name) for info in present}
        self._failed &= present_keys  # a device that went away may be retried when it returns
        for info in present:
            entry = match_scanner(info, self._entries)
            if entry is None or info.path in self._attached:
                continue
            if (info.path, info.name) in self._failed:
                continue
            ref = DeviceRef(entry.id, "keyboard", entry.lane)
            self._attached[info.path] = ref
            readers.create_task(
                self._serve(info, entry, ref), name=f"keyboard:{entry.id}:{info.path}"
            )

    async def _serve(
        self, info: InputDeviceInfo, entry: KeyboardScannerSettings, ref: DeviceRef
    ) -> None:
        try:
            keymap = await asyncio.to_thread(load_keymap, entry.layout, entry.variant)
            source = await asyncio.to_thread(self._finder.open, info)
        except (OSError, KeymapError) as exc:
            self._attached.pop(info.path, None)
            self._failed.add((info.path, info.name))
            log.error("%s: cannot use %s: %s", entry.id, info.path, exc)
            self._sink.status(ref, "error", f"{info.path}: {exc}")
            return
        grabbed = False
        detail = info.path
        final: DeviceState = "disconnected"
        try:
            if entry.grab:
                await asyncio.to_thread(source.grab)
                grabbed = True
            log.info("%s: reading %s (%s, %s)", entry.id, info.path, info.name, info.vendor_product)
            self._sink.status(ref, "connected", info.path)
            decoder = KeyDecoder(keymap, numlock=entry.numlock)
            assembler = ScanAssembler(entry.terminator, entry.inter_key_timeout_ms / 1000)
            reader = KeyboardReader(
                source, info.path, decoder, assembler, lambda s: self._sink.scan(ref, s)
            )
            await reader.run()
        except DeviceLostError as exc:
            detail = str(exc)
            log.info("%s: device gone: %s", entry.id, exc)
        except OSError as exc:  # grab refused: another process holds the device
            detail = f"{info.path}: {exc.strerror or exc}"
            final = "error"
            self._failed.add((info.path, info.name))
            log.error("%s: %s", entry.id, detail)
        except Exception as exc:  # the keyboard supervisor: one device must not stop the rest
            detail = f"{info.path}: reader failed ({exc!r})"
            final = "error"
            self._failed.add((info.path, info.name))  # not retried until it is replugged
            log.exception("%s: reader for %s failed", entry.id, info.path)
        finally:
            self._attached.pop(info.path, None)  # teardown claimed before the first await
            await self._teardown(source, grabbed=grabbed)
            self._sink.status(ref, final, detail)
            if self._watcher is not None:
                self._watcher.nudge()

    @staticmethod
    async def _teardown(source: InputSource, *, grabbed: bool) -> None:
        """ungrab -> close; a vanished device may refuse the ungrab.

        The reader has already taken its fd off the loop (before this first await, so no
        callback fires into its cancelled read while the ungrab runs off the loop); close
        removes it again, harmlessly, and closes the node.
        """
        if grabbed:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(source.ungrab)
        source.close()  # evdev's close removes the loop reader before closing the fd
