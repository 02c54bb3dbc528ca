"""A gateway with no devices configured never loads the device libraries (about a quarter of
an idle gateway's memory); configuring a device of a kind loads that kind's alone. Nor does
it load what only some requests need (argon2, with the first manager PIN) or what it does
without (a settings framework, the ISO 4217 XML table)."""

from __future__ import annotations

import subprocess
import sys

from tests.core.daemon import ROOT

DEVICE_LIBRARIES = ("evdev", "xkbcommon", "pyudev", "serial", "nfc", "ndef", "smartcard", "biip")
ON_DEMAND = ("argon2", "pydantic_settings", "iso4217", "xml")


def _loaded_after(code: str, watched: tuple[str, ...] = DEVICE_LIBRARIES) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {watched!r} if m in sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_the_daemon_and_its_command_line_load_no_device_library() -> None:
    code = (
        "import edge.cli.main, edge.app\n"
        "from edge.bus import EventBus\n"
        "from edge.devices.readers import DeviceReaders\n"
        "from edge.devices.settings import DevicesSettings\n"
        "from edge.lanes.router import LaneRouter\n"
        "from edge.lanes.settings import LanesSettings\n"
        "DeviceReaders(DevicesSettings(), LaneRouter(EventBus(), LanesSettings()))\n"
    )
    assert _loaded_after(code) == set()


def test_a_configured_serial_scanner_loads_pyserial_but_not_the_others() -> None:
    code = (
        "from edge.bus import EventBus\n"
        "from edge.devices.readers import DeviceReaders\n"
        "from edge.devices.settings import DevicesSettings\n"
        "from edge.lanes.router import LaneRouter\n"
        "from edge.lanes.settings import LanesSettings\n"
        "settings = DevicesSettings.model_validate(\n"
        "    {'serial': [{'id': 's1', 'lane': 'lane-1', 'port': '/dev/ttyUSB0'}]})\n"
        "DeviceReaders(settings, LaneRouter(EventBus(), LanesSettings()))\n"
    )
    loaded = _loaded_after(code)
    assert "serial" in loaded
    assert not loaded & {"evdev", "xkbcommon", "nfc", "smartcard"}


def test_the_daemon_loads_argon2_with_the_first_pin_and_no_settings_framework() -> None:
    start = (
        "import edge.cli.main, edge.app\n"
        "from edge.settings import load_settings\n"
        "load_settings(None, currency='JPY')\n"
    )
    assert _loaded_after(start, ON_DEMAND) == set()
    pin = start + "from edge.ledger.people import hash_pin, pin_matches\n"
    pin += "assert pin_matches('2468', hash_pin('2468'))\n"
    assert _loaded_after(pin, ON_DEMAND) == {"argon2"}
