"""Fixtures for the contract conformance suite: a broker the test starts, and gateways.

Every test runs on each broker kind: mosquitto (MQTT 5, a fresh one per test), and the
3.1.1-only brokers that cluster, RabbitMQ and NATS (one of each for the session, from
tests/conftest.py, as RabbitMQ takes seconds to start). Tests run one after another with
clean sessions: nothing is left behind but retained messages, which no test reads from an
earlier one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import KINDS, Broker
from tests.hqlink.broker import Mosquitto

from .peers import Gateway


@pytest.fixture(params=KINDS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    if request.param == "mosquitto":
        mosquitto = Mosquitto(tmp_path / "broker")
        mosquitto.start()
        yield mosquitto
        mosquitto.stop()
        return
    shared: Broker = request.getfixturevalue(request.param)
    if not shared.running:  # an earlier test stopped it and failed before starting it again
        shared.start()
    yield shared


@pytest.fixture
def gateway(tmp_path: Path, broker: Broker) -> Iterator[Gateway]:
    """A gateway on the shipped defaults (short timers only), not yet started."""
    gw = Gateway(tmp_path / "gateway", broker.port)
    gw.workdir.mkdir()
    yield gw
    code = gw.stop()
    assert code == 0, gw.log()[-4000:]
