"""Fixtures for the contract conformance suite: a broker the test starts, and gateways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hqlink.broker import Mosquitto

from .peers import Gateway


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "broker")
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def gateway(tmp_path: Path, broker: Mosquitto) -> Iterator[Gateway]:
    """A gateway on the shipped defaults (short timers only), not yet started."""
    gw = Gateway(tmp_path / "gateway", broker.port)
    gw.workdir.mkdir()
    yield gw
    code = gw.stop()
    assert code == 0, gw.log()[-4000:]
