"""The configuration examples store IT copies from docs/devices.md are valid as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```toml\n(.*?)```", (ROOT / "docs" / "devices.md").read_text(), re.DOTALL)


def test_the_guide_has_an_example_for_each_device_kind() -> None:
    text = "\n".join(BLOCKS)
    for table in (
        "[[devices.keyboards]]",
        "[[devices.serial]]",
        "[[devices.pcsc]]",
        "[[devices.nfc]]",
        "[lanes]",
    ):
        assert table in text


@pytest.mark.parametrize("block", BLOCKS)
def test_each_example_validates(block: str, tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(block)
    settings = load_settings(path)
    entries = [
        *settings.devices.keyboards,
        *settings.devices.serial,
        *settings.devices.nfc,
        *settings.devices.pcsc,
    ]
    assert entries or settings.lanes.duplicate_window_ms_by_lane == {"lane-1": 800}


def test_example_config_devices_section_validates() -> None:
    settings = load_settings(ROOT / "config" / "gateway.example.toml")
    assert settings.lanes.replay_s == 10.0
