"""When the relay sends an event again: after `ack_timeout_s`, and only while HQ acks
nothing, or once HQ has acked events sent after it that long ago. A window HQ is still
working through (a busy HQ after a regional outage) is not sent again."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from edge.bus import EventBus
from edge.hqlink import relay as relay_module
from edge.hqlink.alerts import Alerts
from edge.hqlink.relay import Relay, _Flight
from edge.hqlink.settings import HqSettings
from edge.ledger.hq_sync import Ack
from edge.ledger.ledger import Ledger
from edge.ledger.outbox import Origin


class Clock:
    """Stands in for the relay module's `time`: the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


class Publishes:
    """The MQTT client as the relay uses it here: it records what is published."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> Any:
        self.sent.append(payload)


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    clock = Clock()
    monkeypatch.setattr(relay_module, "time", clock)
    client = Publishes()
    bus = EventBus()
    async with Ledger(tmp_path / "ledger.sqlite3", bus, Origin("0042", "gw-01")) as ledger:
        relay = Relay(
            ledger,
            client,  # type: ignore[arg-type]
            "retail/v1/0042/gw-01/events",
            HqSettings(ack_timeout_s=10.0, window=10),
            Alerts(client, "retail/v1/0042/gw-01/alerts"),  # type: ignore[arg-type]
            Counter(),
            bus,
        )
        yield relay, client, clock


def send(relay: Relay, clock: Clock, *names: str) -> None:
    for seq, name in enumerate(names, start=1):
        flight = _Flight(seq, name.encode(), clock.now, clock.now, 0)
        relay._send(name, flight)
        relay._inflight[name] = flight


def ack(relay: Relay, clock: Clock, at: float, name: str) -> None:
    clock.now = at
    relay.on_ack(Ack(name, "accepted"))


def resends_at(relay: Relay, client: Publishes, clock: Clock, at: float) -> list[str]:
    clock.now = at
    before = len(client.sent)
    relay._resend_expired()
    return [p.decode() for p in client.sent[before:]]


async def test_a_window_hq_works_through_is_not_sent_again(rig: Any) -> None:
    relay, client, clock = rig
    start = clock.now
    send(relay, clock, "e1", "e2", "e3", "e4", "e5")
    for n, name in enumerate(("e1", "e2", "e3"), start=1):
        ack(relay, clock, start + 3 * n, name)  # a busy HQ: one ack every 3 s, in order
    assert resends_at(relay, client, clock, start + 11) == []  # due, but HQ is acking
    ack(relay, clock, start + 12, "e4")
    ack(relay, clock, start + 14, "e5")
    assert relay.in_flight == 0
    assert relay.resent == 0


async def test_an_event_passed_over_is_sent_again_a_timeout_after_it_was(rig: Any) -> None:
    relay, client, clock = rig
    start = clock.now
    send(relay, clock, "e1", "e2", "e3")
    ack(relay, clock, start + 3, "e1")
    ack(relay, clock, start + 12, "e3")  # e2 was lost on the way: HQ went past it
    ack(relay, clock, start + 20, "e3")  # (a duplicate ack: HQ is alive, nothing new)
    assert resends_at(relay, client, clock, start + 21) == []  # passed over 9 s ago only
    assert resends_at(relay, client, clock, start + 22.5) == ["e2"]
    assert resends_at(relay, client, clock, start + 23) == []  # not again before its timeout


async def test_everything_due_is_sent_again_while_hq_acks_nothing(rig: Any) -> None:
    relay, client, clock = rig
    start = clock.now
    send(relay, clock, "e1", "e2")
    assert resends_at(relay, client, clock, start + 9.9) == []
    assert resends_at(relay, client, clock, start + 10) == ["e1", "e2"]  # never an ack
    ack(relay, clock, start + 11, "e1")
    assert resends_at(relay, client, clock, start + 20.5) == []  # acked 9.5 s ago: not silent
    assert resends_at(relay, client, clock, start + 21.5) == ["e2"]  # silent for 10 s
