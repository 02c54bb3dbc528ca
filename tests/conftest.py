"""Session-wide fixtures: the 3.1.1-only brokers that cluster, started once a session.

RabbitMQ takes seconds to start, so the contract suite and the broker interop tests share
one of each; tests on them use their own client ids and store ids (or run one after
another with clean sessions), so nothing one test leaves behind reaches another.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.brokers import Nats, RabbitMq


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMq]:
    with RabbitMq(tmp_path_factory.mktemp("rabbitmq")) as broker:
        yield broker


@pytest.fixture(scope="session")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nats]:
    with Nats(tmp_path_factory.mktemp("nats")) as broker:
        yield broker
