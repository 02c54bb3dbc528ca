"""Defaults, the TOML file, `EDGE_*` variables and overrides, merged key by key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.settings import load_settings


def test_each_source_overrides_the_one_before_key_by_key(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('store_id = "0042"\n[lan]\nbind = "10.0.0.2"\nport = 8081\n')
    env = {"EDGE_LAN__PORT": "9090", "edge_hq__broker__port": "1884", "EDGE_CONFIG": "x"}
    settings = load_settings(config, environ=env, lan={"max_body_bytes": 4096})
    assert settings.store_id == "0042"
    assert (settings.lan.bind, settings.lan.port, settings.lan.max_body_bytes) == (
        "10.0.0.2",
        9090,
        4096,
    )
    assert settings.hq.broker.port == 1884  # names are not case-sensitive


def test_sections_tables_and_lists_are_json_and_parts_win() -> None:
    env = {
        "EDGE_LAN": '{"port": 9093, "bind": "127.0.0.1"}',
        "EDGE_LAN__PORT": "9094",
        "EDGE_REFUNDS__APPROVAL_THRESHOLD": '{"USD": "50.00"}',
        "EDGE_DEVICES__SERIAL": '[{"id": "s1", "lane": "lane-1", "port": "/dev/ttyUSB0"}]',
    }
    settings = load_settings(None, environ=env)
    assert (settings.lan.bind, settings.lan.port) == ("127.0.0.1", 9094)
    assert settings.refunds.approval_threshold == {"USD": Decimal("50.00")}
    assert [d.id for d in settings.devices.serial] == ["s1"]


def test_bad_values_are_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={"EDGE_LAN": "port=1"})
    assert caught.value.problems == [("lan", "EDGE_LAN must be JSON for this setting")]
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={"EDGE_LAN__PORTT": "1", "EDGE_LAN__PORT": "[1]"})
    assert {key for key, _ in caught.value.problems} == {"lan.portt", "lan.port"}


def test_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[lan\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    ((key, message),) = caught.value.problems
    assert key == "(file)"
    assert str(config) in message
