"""The fleet view: retained state and Will, health, alerts; and `edge-gateway fleet`."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from edge.contract.payloads import Malformed, dumps
from edge.hq.fleet import FleetView
from edge.mqtt.client import Message
from tests.core.daemon import ROOT
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import PREFIX, Observer

GW = f"{PREFIX}/0042/gw-01"


def msg(leaf: str, body: object) -> Message:
    return Message(f"{GW}/{leaf}", dumps(body), 1, True)


def test_a_late_will_of_an_old_session_does_not_mark_a_live_gateway_offline() -> None:
    fleet = FleetView(PREFIX)
    fleet.apply(msg("state", {"state": "online", "bd_seq": 5, "version": "1.0"}), 100.0)
    fleet.apply(msg("state", {"state": "offline", "bd_seq": 4}), 101.0)
    assert fleet.rows(102.0)[0]["state"] == "online"
    fleet.apply(msg("state", {"state": "offline", "bd_seq": 5}), 103.0)
    assert fleet.rows(104.0)[0]["state"] == "offline"


def test_health_and_alerts_make_the_row() -> None:
    fleet = FleetView(PREFIX)
    alert = {"alert": "outbox-high-water", "severity": "warning", "detail": "", "subject": ""}
    health = {
        "at": "2026-11-22T10:00:00Z",
        "link": {"state": "online"},
        "outbox": {"pending": 7, "oldest_pending_age_s": 3.5},
        "alerts_open": [alert],
    }
    fleet.apply(msg("health", health), 100.0)
    row = fleet.rows(110.0)[0]
    assert (row["health_age_s"], row["outbox_pending"], row["alerts"]) == (
        10.0,
        7,
        ["outbox-high-water"],
    )
    cleared = {**alert, "at": "2026-11-22T10:00:01Z", "state": "cleared"}
    fleet.apply(msg("alerts", cleared), 111.0)
    assert fleet.rows(112.0)[0]["alerts"] == []
    assert "0042" in fleet.render(112.0)
    with pytest.raises(Malformed):
        fleet.apply(Message(f"{GW}/health", b"[]", 0, True))
    with pytest.raises(Malformed):
        fleet.apply(Message("elsewhere/x", b"{}", 0, True))


async def test_fleet_command_lists_every_gateway(broker: Mosquitto) -> None:
    async with Observer(broker.port, [f"{PREFIX}/+/+/state"]) as obs:
        for n in range(3):
            base = f"{PREFIX}/00{n}/gw-01"
            state = "offline" if n == 2 else "online"
            obs.client.publish(
                f"{base}/state", dumps({"state": state, "bd_seq": n}), qos=1, retain=True
            )
            health = {"at": "2026-11-22T10:00:00Z", "outbox": {"pending": n}, "link": {}}
            obs.client.publish(f"{base}/health", dumps(health), qos=1, retain=True)
        await obs.wait_for(lambda: len(obs.messages) >= 3)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge",
        "fleet",
        "--broker-port",
        str(broker.port),
        "--json",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    rows = json.loads(out)
    assert [(r["store_id"], r["state"], r["outbox_pending"]) for r in rows] == [
        ("000", "online", 0),
        ("001", "online", 1),
        ("002", "offline", 2),
    ]
