"""A gateway with no devices configured never loads the device libraries (about a quarter of
an idle gateway's memory); configuring a device of a kind loads that kind's alone."""

from __future__ import annotations

import subprocess
import sys

from tests.core.daemon import ROOT

DEVICE_LIBRARIES = ("evdev", "xkbcommon", "pyudev", "serial", "nfc", "ndef", "smartcard", "biip")


def _loaded_after(code: str) -> set[str]:
    probe = (
        f"{code}\n"
        "import sys\n"
        f"print(' '.join(m for m in {DEVICE_LIBRARIES!r} if m in sys.modules))\n"
    )
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
