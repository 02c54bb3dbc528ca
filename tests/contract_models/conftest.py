"""A real mosquitto per test that needs one, as in tests/hqlink."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hqlink.broker import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "broker")
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()
