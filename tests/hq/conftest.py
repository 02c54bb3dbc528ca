"""The same real mosquitto per test as the HQ link tests use."""

from tests.hqlink.conftest import broker

__all__ = ["broker"]
