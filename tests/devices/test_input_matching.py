"""Matching input devices to configured scanners: vendor:product, name, physical port."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.devices.input_discovery import (
    EvdevFinder,
    InputDeviceInfo,
    by_path_links,
    match_scanner,
    matches,
)
from edge.devices.settings import DevicesSettings, KeyboardScannerSettings
from edge.lanes.settings import LanesSettings

HONEYWELL_A = InputDeviceInfo(
    path="/dev/input/event5",
    name="Honeywell Imaging & Mobility 1900",
    vendor=0x0C2E,
    product=0x0B61,
    id_path="pci-0000:00:14.0-usb-0:1.1:1.0",
    by_path=("pci-0000:00:14.0-usb-0:1.1:1.0-event-kbd",),
)
HONEYWELL_B = InputDeviceInfo(
    path="/dev/input/event6",
    name="Honeywell Imaging & Mobility 1900",
    vendor=0x0C2E,
    product=0x0B61,
    by_path=("pci-0000:00:14.0-usb-0:1.2:1.0-event-kbd",),
)
KEYBOARD = InputDeviceInfo(
    path="/dev/input/event2", name="AT Translated Set 2 keyboard", vendor=1, product=1
)


def entry(**kwargs: str) -> KeyboardScannerSettings:
    return KeyboardScannerSettings(
        id=kwargs.pop("id", "s"), lane=kwargs.pop("lane", "lane-1"), **kwargs
    )


def test_vendor_product_and_name_glob() -> None:
    assert matches(HONEYWELL_A, entry(vendor_product="0C2E:0B61"))
    assert matches(HONEYWELL_A, entry(name="Honeywell*"))
    assert not matches(KEYBOARD, entry(name="Honeywell*"))
    assert not matches(HONEYWELL_A, entry(vendor_product="05e0:1200"))


def test_port_path_tells_identical_scanners_apart() -> None:
    lanes = [
        entry(id="a", lane="lane-1", vendor_product="0c2e:0b61", path="*usb-0:1.1:1.0"),
        entry(id="b", lane="lane-2", vendor_product="0c2e:0b61", path="*usb-0:1.2:1.0"),
    ]
    found_a, found_b = match_scanner(HONEYWELL_A, lanes), match_scanner(HONEYWELL_B, lanes)
    assert (found_a and found_a.lane, found_b and found_b.lane) == ("lane-1", "lane-2")
    assert match_scanner(KEYBOARD, lanes) is None


def test_path_matches_udev_id_path_or_by_path_link_name() -> None:
    assert matches(HONEYWELL_A, entry(path="pci-0000:00:14.0-usb-0:1.1:1.0"))  # ID_PATH
    assert matches(
        HONEYWELL_B, entry(path="pci-0000:00:14.0-usb-0:1.2:1.0")
    )  # by-path without tail
    assert matches(HONEYWELL_B, entry(path="*-event-kbd"))  # the full link name


def test_every_given_criterion_must_hold() -> None:
    assert not matches(HONEYWELL_A, entry(name="Honeywell*", path="*usb-0:1.2:1.0"))


def test_a_scanner_entry_needs_some_way_to_be_recognised() -> None:
    with pytest.raises(ValidationError, match="vendor_product, name or path"):
        KeyboardScannerSettings(id="s", lane="lane-1")


def test_device_ids_are_unique_across_kinds() -> None:
    with pytest.raises(ValidationError, match="used twice"):
        DevicesSettings.model_validate(
            {
                "keyboards": [{"id": "x", "lane": "l", "name": "n"}],
                "serial": [{"id": "x", "lane": "l", "port": "/dev/ttyACM0"}],
            }
        )


def test_serial_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="stop bits"):
        DevicesSettings.model_validate(
            {"serial": [{"id": "s", "lane": "l", "port": "/dev/x", "stopbits": 3}]}
        )
    with pytest.raises(ValidationError, match="unknown encoding"):
        DevicesSettings.model_validate(
            {"serial": [{"id": "s", "lane": "l", "port": "/dev/x", "encoding": "klingon"}]}
        )


def test_by_path_links_resolve_to_their_event_nodes(tmp_path: Path) -> None:
    (tmp_path / "event5").touch()
    (tmp_path / "event6").touch()
    links = tmp_path / "by-path"
    links.mkdir()
    (links / "pci-0000:00:14.0-usb-0:1.1:1.0-event-kbd").symlink_to("../event5")
    (links / "pci-0000:00:14.0-usb-0:1.2:1.0-event-kbd").symlink_to("../event6")
    (links / "dangling-event-kbd").symlink_to("../event99")
    found = by_path_links(tmp_path)
    assert found == {
        str(tmp_path / "event5"): ["pci-0000:00:14.0-usb-0:1.1:1.0-event-kbd"],
        str(tmp_path / "event6"): ["pci-0000:00:14.0-usb-0:1.2:1.0-event-kbd"],
    }


def test_scan_skips_nodes_it_cannot_open(tmp_path: Path) -> None:
    (tmp_path / "event0").write_text("not a device")
    assert EvdevFinder(tmp_path).scan() == []
    assert EvdevFinder(tmp_path / "missing").scan() == []


def test_lane_duplicate_windows_are_checked() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        LanesSettings(duplicate_window_ms_by_lane={"lane-1": -5})
