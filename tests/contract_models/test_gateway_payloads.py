"""What a running HQ link really publishes is what the contract's models say, byte for
byte: each payload read with its model and written back gives the same bytes, so the
gateway sends no field the model lacks, lacks none it has, and keeps the order."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from pydantic import BaseModel

from edge.contract.commands import (
    AlertsResult,
    CmdResultMsg,
    PingResult,
    PruneResult,
    ReconcileResult,
    ReplayResult,
)
from edge.contract.health import BirthMsg, HealthMsg, WillMsg
from edge.contract.payloads import AlertMsg, LookupMsg, dumps, encode, parse
from edge.contract.timefmt import utcnow
from edge.domain.errors import HqUnreachable
from edge.events import DeviceStatusEvent
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import Observer
from tests.hqlink.inproc import BASE, LinkRig, link_rig

COMMANDS: list[tuple[str, dict[str, object], type[BaseModel] | None]] = [
    ("ping", {}, PingResult),
    ("alerts", {}, AlertsResult),
    ("health", {}, HealthMsg),
    ("replay", {"from_seq": 1}, ReplayResult),
    ("prune", {}, PruneResult),
    ("reconcile", {}, ReconcileResult),
    ("replay", {}, None),  # refused: no from_seq
    ("no-such-command", {}, None),
]
BY_LEAF: dict[str, type[BaseModel]] = {
    "health": HealthMsg,
    "alerts": AlertMsg,
    "cmd-result": CmdResultMsg,
    "lookup": LookupMsg,
}


def same_bytes(model: type[BaseModel], payload: bytes) -> bool:
    return encode(parse(model, payload)) == payload


async def run_commands(rig: LinkRig) -> None:
    for n, (name, args, _) in enumerate(COMMANDS):
        body = dumps({"request_id": f"c{n}", "args": args})
        rig.hq.client.publish(f"{BASE}/cmd/{name}", body, qos=1)
        await rig.hq.wait_for(
            lambda n=n: (r := rig.hq.latest(f"{BASE}/cmd-result")) and r["request_id"] == f"c{n}"
        )


def health_with_device_and_alert(rig: LinkRig) -> bool:
    health = rig.hq.latest(f"{BASE}/health")
    return bool(health and health["devices"] and health["alerts_open"])


async def test_every_payload_the_gateway_sends_is_its_model_byte_for_byte(
    tmp_path, broker: Mosquitto
) -> None:
    async with Observer(broker.port, [f"{BASE}/state"]) as watcher:
        async with link_rig(tmp_path, broker.port, lookup_timeout_s=0.2) as rig:
            for lane, kind, state in (("lane-3", "keyboard", "connected"), (None, "nfc", "error")):
                rig.bus.publish(
                    DeviceStatusEvent(
                        lane=lane, device=f"{kind}-1", kind=kind, state=state, at=utcnow()
                    )
                )
            rig.link.alerts.raise_("event-rejected", "warning", "HQ rejected E1: no", "E1")
            rig.link.alerts.raise_("event-rejected", "warning", "HQ rejected E2: é", "E2")
            rig.link.alerts.clear("event-rejected", "E1")
            await rig.add_events(2)
            await run_commands(rig)
            with pytest.raises(HqUnreachable):
                await rig.link.lookup_order("WEB-404")  # nobody answers: the request is out
            await rig.hq.wait_for(lambda: health_with_device_and_alert(rig))
            sent = [(m.topic.rsplit("/", 1)[1], m.payload) for m in rig.hq.messages]
        await watcher.wait_for(
            lambda: json.loads(watcher.retained[f"{BASE}/state"].payload)["state"] == "offline"
        )
        states = [m.payload for m in watcher.messages]

    seen: Counter[str] = Counter()
    for leaf, payload in sent:
        if leaf in BY_LEAF:
            assert same_bytes(BY_LEAF[leaf], payload), (leaf, payload)
            seen[leaf] += 1
    assert set(seen) == set(BY_LEAF)
    assert seen["alerts"] == 3  # two raised, one cleared

    results = {
        r["request_id"]: r for leaf, p in sent if leaf == "cmd-result" for r in [json.loads(p)]
    }
    for n, (name, _, result_model) in enumerate(COMMANDS):
        result = results[f"c{n}"]
        assert result["command"] == name
        if result_model is None:
            assert result["ok"] is False
            assert "result" not in result
        else:
            assert result["ok"] is True, result
            assert "error" not in result
            assert same_bytes(result_model, dumps(result["result"]))

    births = [p for p in states if json.loads(p)["state"] == "online"]
    wills = [p for p in states if json.loads(p)["state"] == "offline"]
    assert births
    assert wills
    assert all(same_bytes(BirthMsg, p) for p in births)
    assert all(same_bytes(WillMsg, p) for p in wills)
    assert parse(WillMsg, wills[-1]).bd_seq == parse(BirthMsg, births[-1]).bd_seq
