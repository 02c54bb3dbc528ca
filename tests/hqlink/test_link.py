"""Link state, order look-up and commands, in process against a real broker."""

from __future__ import annotations

import asyncio
import json

import pytest

from edge.contract.payloads import dumps
from edge.domain.errors import HqUnreachable
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import cash_sale
from tests.hqlink.inproc import BASE, LinkRig, link_rig


def health_state(rig: LinkRig) -> str | None:
    health = rig.hq.latest(f"{BASE}/health")
    return None if health is None else str(health["link"]["state"])


async def test_default_online_needs_only_the_broker_and_acks(tmp_path, broker: Mosquitto) -> None:
    """The contract's HQ announces nothing: online from the connection, offline only when
    pending events go unacked past ack_silence_s, online again when HQ acks."""
    async with link_rig(tmp_path, broker.port, ack_silence_s=0.5, require_hq_presence=None) as rig:
        assert rig.link.settings.require_hq_presence is False  # the shipped default
        await rig.hq.wait_for(lambda: health_state(rig) == "online")
        assert rig.link.online is True
        await rig.add_events(1)
        event = await rig.hq.wait_for(lambda: rig.events() and rig.events()[0])
        await rig.hq.wait_for(
            lambda: (s := health_state(rig)) and s.startswith("offline: HQ has not acked")
        )
        assert rig.link.online is False
        rig.ack(event["event_id"])
        await rig.hq.wait_for(lambda: health_state(rig) == "online")
        assert rig.link.online is True


async def test_presence_refines_online_but_never_gates_delivery(
    tmp_path, broker: Mosquitto
) -> None:
    async with link_rig(tmp_path, broker.port, require_hq_presence=True) as rig:
        assert rig.link.state == "offline: no HQ service online"
        await rig.add_events(2)  # still sent: presence is only a view of the link
        sent = await rig.hq.wait_for(lambda: len(rig.events()) >= 2 and rig.events())
        assert [e["seq"] for e in sent[:2]] == [1, 2]


async def test_online_needs_the_broker_hq_presence_and_acks(tmp_path, broker: Mosquitto) -> None:
    async with link_rig(tmp_path, broker.port, ack_silence_s=0.5, require_hq_presence=True) as rig:
        assert rig.link.state == "offline: no HQ service online"
        assert rig.link.online is False
        rig.announce_hq("online")
        await rig.hq.wait_for(lambda: health_state(rig) == "online")
        assert rig.link.online is True
        await rig.add_events(1)  # HQ present but never acks: after ack_silence_s, offline
        state = await rig.hq.wait_for(
            lambda: (s := health_state(rig)) and s.startswith("offline: HQ has not acked") and s
        )
        assert rig.link.online is False
        event = rig.events()[0]
        rig.ack(event["event_id"])
        await rig.hq.wait_for(lambda: health_state(rig) == "online")
        rig.announce_hq("offline")  # the HQ service's Will
        await rig.hq.wait_for(lambda: health_state(rig) == "offline: no HQ service online")
        assert state == "offline: HQ has not acked for over 0.5 s"


async def test_broker_loss_shows_in_state_and_reconnects(tmp_path, broker: Mosquitto) -> None:
    async with link_rig(tmp_path, broker.port, require_hq_presence=True) as rig:
        rig.announce_hq("online")
        await rig.hq.wait_for(lambda: health_state(rig) == "online")
        generation = rig.link.client.generation
        broker.stop()
        async with asyncio.timeout(10):
            await rig.link.client.wait_disconnected()
        assert rig.link.state.startswith("offline: ")
        assert rig.link.online is False
        broker.start()
        await rig.hq.client.wait_connected()
        rig.announce_hq("online")  # the restarted broker lost its retained messages
        await rig.hq.wait_for(
            lambda: rig.link.client.generation > generation and health_state(rig) == "online"
        )


def answer_lookups(rig: LinkRig, sales: dict[str, dict[str, object]], done: set[str]) -> None:
    """Play HQ: answer every new look-up request on its reply topic."""
    for msg in rig.hq.messages:
        if not msg.topic.endswith("/lookup"):
            continue
        req = json.loads(msg.payload)
        if req["request_id"] in done:
            continue
        done.add(req["request_id"])
        sale = sales.get(req["code"])
        body = {"request_id": req["request_id"], "found": sale is not None, "sale": sale}
        rig.hq.client.publish(
            msg.response_topic or req["reply_to"],
            dumps(body),
            qos=1,
            correlation=msg.correlation,
        )


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_online_order_look_up(tmp_path, broker: Mosquitto, protocol: str) -> None:
    order = {**cash_sale("WEB-1001", 2, "15.00"), "channel": "online"}
    answered: set[str] = set()
    async with link_rig(tmp_path, broker.port, broker={"protocol": protocol}) as rig:
        assert rig.link.client.protocol == protocol

        async def ask(code: str) -> dict[str, object] | None:
            task = asyncio.ensure_future(rig.link.lookup_order(code))
            sales = {"WEB-1001": order}
            await rig.hq.wait_for(lambda: answer_lookups(rig, sales, answered) or task.done())
            return await task

        sale = await ask("WEB-1001")
        assert sale is not None
        assert sale.channel == "online"
        assert sale.lines[0].returnable_quantity == 2
        assert await rig.ledger.sale("WEB-1001") is not None  # journaled: refundable here
        assert await ask("WEB-404") is None
        asked = rig.link.lookup.asked
        assert await ask("WEB-404") is None  # cached
        assert rig.link.lookup.asked == asked
        requests = [json.loads(m.payload) for m in rig.hq.messages if m.topic.endswith("/lookup")]
        assert all(r["reply_to"] == f"{BASE}/lookup-reply" for r in requests)


async def test_look_up_times_out_as_hq_unreachable(tmp_path, broker: Mosquitto) -> None:
    async with link_rig(tmp_path, broker.port, lookup_timeout_s=0.3) as rig:
        with pytest.raises(HqUnreachable, match="did not answer"):
            await rig.link.lookup_order("WEB-1")  # no presence: asked all the same
        assert rig.link.lookup.asked == 1
        broker.stop()
        async with asyncio.timeout(10):
            await rig.link.client.wait_disconnected()
        with pytest.raises(HqUnreachable, match="not reachable"):
            await rig.link.lookup_order("WEB-2")  # no broker: refused at once
        assert rig.link.lookup.asked == 1


async def test_commands_ping_and_replay(tmp_path, broker: Mosquitto) -> None:
    async with link_rig(tmp_path, broker.port) as rig:
        await rig.add_events(3)
        sent = await rig.hq.wait_for(lambda: len(rig.events()) >= 3 and rig.events())
        for event in sent[:3]:
            rig.ack(event["event_id"])
        await rig.hq.wait_for(lambda: rig.link.relay.acked == 3)
        rig.hq.client.publish(f"{BASE}/cmd/ping", dumps({"request_id": "p1"}), qos=1)
        pong = await rig.hq.wait_for(lambda: rig.hq.latest(f"{BASE}/cmd-result"))
        assert (pong["request_id"], pong["ok"], pong["result"]["pong"]) == ("p1", True, True)
        before = len(rig.events())
        body = {"request_id": "r1", "args": {"from_seq": 2}}
        rig.hq.client.publish(f"{BASE}/cmd/replay", dumps(body), qos=1)
        result = await rig.hq.wait_for(
            lambda: (r := rig.hq.latest(f"{BASE}/cmd-result")) and r["request_id"] == "r1" and r
        )
        assert result["result"] == {"replayed": 2, "first_seq_held": 1}
        again = await rig.hq.wait_for(
            lambda: len(rig.events()) >= before + 2 and rig.events()[before:]
        )
        assert sorted(e["seq"] for e in again) == [2, 3]
