"""The `[devices]` configuration: which scanners and readers exist and which lane each serves.

Every entry names a lane; a keyboard-wedge entry also says how to recognise its device
(vendor:product, a name pattern, or the physical port path, so two identical scanners on
two USB ports can serve two lanes). An NFC or PC/SC reader's `mode` says what a tap is:
`auto` (the default) lets one reader serve both jobs, a manager's badge becoming an approval
and any other tag a scan; `approvals` takes every tap as a badge, `tags` every tap as a scan.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.devices.sink import TapMode

DeviceId = str
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$"
Layout = Literal["us", "de", "fr", "gb"]
NfcTarget = Literal["106A", "106B", "212F", "424F"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _DeviceEntry(_Section):
    id: DeviceId = Field(pattern=_ID_PATTERN)
    lane: str = Field(pattern=_ID_PATTERN)


class KeyboardScannerSettings(_DeviceEntry):
    """A scanner that types like a USB keyboard (HID keyboard wedge), read with evdev."""

    vendor_product: str | None = Field(None, pattern=r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")
    name: str | None = Field(None, min_length=1, description="glob on the device name")
    path: str | None = Field(
        None, min_length=1, description="glob on udev ID_PATH or the /dev/input/by-path name"
    )
    layout: Layout = "us"
    variant: str = ""
    terminator: Literal["enter", "tab", "none"] = "enter"
    inter_key_timeout_ms: int = Field(60, ge=5, le=5000)
    numlock: bool = True
    grab: bool = True

    @model_validator(mode="after")
    def _needs_a_match(self) -> KeyboardScannerSettings:
        if self.vendor_product is None and self.name is None and self.path is None:
            msg = "give at least one of vendor_product, name or path to recognise the scanner"
            raise ValueError(msg)
        return self


class SerialScannerSettings(_DeviceEntry):
    """A scanner on a serial port (RS-232, or USB CDC-ACM in serial mode)."""

    port: str = Field(min_length=1)
    baudrate: int = Field(9600, ge=50, le=4_000_000)
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: float = 1
    suffix: Literal["cr", "lf", "crlf"] = "cr"
    encoding: str = "utf-8"
    reconnect_s: float = Field(2.0, gt=0, le=60)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            msg = f"unknown encoding {value!r}"
            raise ValueError(msg) from None
        return value

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            msg = "stop bits are 1, 1.5 or 2"
            raise ValueError(msg)
        return value


def _default_targets() -> list[NfcTarget]:
    return ["106A", "106B", "212F"]


class NfcReaderSettings(_DeviceEntry):
    """A contactless reader driven by nfcpy (PN53x, RC-S380 ...); `path` is nfcpy's."""

    path: str = "usb"
    mode: TapMode = "auto"
    targets: list[NfcTarget] = Field(default_factory=_default_targets)
    reconnect_s: float = Field(2.0, gt=0, le=60)


class PcscReaderSettings(_DeviceEntry):
    """A PC/SC reader (ACR122U and similar) through pcscd; `reader` matches its name."""

    reader: str = Field(min_length=1, description="substring of the PC/SC reader name")
    mode: TapMode = "auto"
    reconnect_s: float = Field(2.0, gt=0, le=60)


class DevicesSettings(_Section):
    """All input devices; device ids are unique across kinds."""

    keyboards: list[KeyboardScannerSettings] = Field(default_factory=list)
    serial: list[SerialScannerSettings] = Field(default_factory=list)
    nfc: list[NfcReaderSettings] = Field(default_factory=list)
    pcsc: list[PcscReaderSettings] = Field(default_factory=list)
    input_dir: Path = Path("/dev/input")
    hotplug: Literal["auto", "udev", "poll"] = "auto"
    poll_interval_s: float = Field(2.0, gt=0, le=60)

    @model_validator(mode="after")
    def _unique_ids(self) -> DevicesSettings:
        seen: set[str] = set()
        for entry in [*self.keyboards, *self.serial, *self.nfc, *self.pcsc]:
            if entry.id in seen:
                msg = f"device id {entry.id!r} is used twice"
                raise ValueError(msg)
            seen.add(entry.id)
        return self
