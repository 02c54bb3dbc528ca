"""Fault tests with a real mosquitto, a real gateway process and a real HQ service process.

(a) the broker down for the middle of 1,000 refunds; (b) the gateway SIGKILLed mid-drain
ten times; (c) the HQ service SIGKILLed mid-stream; (e) the Will after a SIGKILL. In each,
HQ ends up holding every event exactly once, with no seq gap, and every refund decided once.
"""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp

from tests.hqlink.broker import Mosquitto
from tests.hqlink.faults import (
    assert_exactly_once,
    record_sales,
    refund_many,
    refund_one,
    wait_drained,
)
from tests.hqlink.harness import PREFIX, Gateway, HqService, Observer, Register, card_sale

TOPICS = [f"{PREFIX}/+/+/acks", f"{PREFIX}/_hq/presence/+", f"{PREFIX}/+/+/health"]


def link_state(obs: Observer, gw: Gateway) -> str | None:
    health = obs.latest(f"{gw.base}/health")
    return None if health is None else str(health["link"]["state"])


async def test_broker_down_for_the_middle_of_1000_refunds(tmp_path, broker: Mosquitto) -> None:
    gw = Gateway(tmp_path, broker.port)
    hq = HqService(tmp_path, broker.port)
    async with Observer(broker.port, TOPICS) as obs, aiohttp.ClientSession() as http:
        await hq.start(obs)
        await gw.start()
        try:
            reg = await Register(http, gw.url, gw.add_client()).login()
            sales = await record_sales(reg, 10)
            await obs.wait_for(lambda: link_state(obs, gw) == "online")
            first = await refund_many(reg, sales, 300)
            broker.stop()
            during = await refund_many(reg, sales, 400)
            broker.start()
            last = await refund_many(reg, sales, 300)
            await obs.client.wait_connected()
            await wait_drained(obs, gw, 1000)
        finally:
            gw.stop()
            hq.stop()
    refunds = first + during + last
    assert len({r["return_id"] for r in refunds}) == 1000
    assert all(r["offline"] for r in during), "HQ cannot confirm while the broker is down"
    assert not any(r["offline"] for r in first[:250])
    counts = assert_exactly_once(gw, hq.db)
    assert counts["refunds"] == 1000
    assert counts["events"] == 10 + 2 * 1000  # sales, refund.requested, inventory.returned


async def test_gateway_killed_ten_times_mid_drain(tmp_path, broker: Mosquitto) -> None:
    gw = Gateway(tmp_path, broker.port, EDGE_HQ__WINDOW="8")
    hq = HqService(tmp_path, broker.port)
    rng = random.Random(7)
    async with Observer(broker.port, TOPICS) as obs, aiohttp.ClientSession() as http:
        await gw.start()
        reg = await Register(http, gw.url, gw.add_client()).login()
        sales = await record_sales(reg, 6)
        await refund_many(reg, sales, 600)  # HQ is not up yet: all of it waits in the outbox
        await hq.start(obs)
        try:
            for _ in range(10):
                seen = len(obs.acks)
                target = seen + rng.randint(5, 40)
                await obs.wait_for(lambda t=target: len(obs.acks) >= t)
                gw.kill()
                await gw.start()
            await wait_drained(obs, gw, 600)
        finally:
            gw.stop()
            hq.stop()
    counts = assert_exactly_once(gw, hq.db)
    assert (counts["events"], counts["refunds"]) == (6 + 2 * 600, 600)


async def test_hq_killed_and_restarted_mid_stream(tmp_path, broker: Mosquitto) -> None:
    gw = Gateway(tmp_path, broker.port)
    hq = HqService(tmp_path, broker.port, "hq-1", "--delay-s", "0.02")
    async with Observer(broker.port, TOPICS) as obs, aiohttp.ClientSession() as http:
        await hq.start(obs)
        await gw.start()
        try:
            reg = await Register(http, gw.url, gw.add_client()).login()
            sales = await record_sales(reg, 4)
            stream = asyncio.create_task(refund_many(reg, sales, 400, parallel=4))
            for kills in range(3):
                await obs.wait_for(lambda k=kills: len(obs.acks) >= 60 * (k + 1))
                hq.kill()
                await hq.start(obs)
            refunds = await stream
            await wait_drained(obs, gw, 400)
        finally:
            gw.stop()
            hq.stop()
    assert len(refunds) == 400
    counts = assert_exactly_once(gw, hq.db)
    assert counts["refunds"] == 400


async def test_the_will_marks_a_killed_gateway_offline(tmp_path, broker: Mosquitto) -> None:
    gw = Gateway(tmp_path, broker.port)
    async with Observer(broker.port, [f"{PREFIX}/+/+/state"]) as obs:
        await gw.start()
        birth = await obs.wait_for(lambda: obs.latest(f"{gw.base}/state"))
        assert birth["state"] == "online"
        gw.kill()
        will = await obs.wait_for(
            lambda: (s := obs.latest(f"{gw.base}/state")) and s["state"] == "offline" and s
        )
        assert will["bd_seq"] == birth["bd_seq"]
        await gw.start()
        reborn = await obs.wait_for(
            lambda: (s := obs.latest(f"{gw.base}/state")) and s["state"] == "online" and s
        )
        assert reborn["bd_seq"] == birth["bd_seq"] + 1
        gw.stop()
        goodbye = await obs.wait_for(
            lambda: (s := obs.latest(f"{gw.base}/state")) and s["state"] == "offline" and s
        )
        assert goodbye["bd_seq"] == reborn["bd_seq"]
    # a late reader still sees the retained offline state
    async with Observer(broker.port, [f"{gw.base}/state"]) as late:
        state = await late.wait_for(lambda: late.latest(f"{gw.base}/state"))
        assert json.loads(json.dumps(state))["state"] == "offline"


async def test_refunds_keep_working_without_hq_within_offline_limits(
    tmp_path, broker: Mosquitto
) -> None:
    """No HQ answers: once the first event has waited past ack_silence_s the link is offline
    and refunds go on within the offline limits."""
    gw = Gateway(
        tmp_path,
        broker.port,
        EDGE_OFFLINE__MAX_CARD_REFUND='{"USD": "50.00"}',
        EDGE_HQ__ACK_SILENCE_S="1",
    )
    silent = "offline: HQ has not acked for over 1 s"
    async with Observer(broker.port, TOPICS) as obs, aiohttp.ClientSession() as http:
        await gw.start()
        try:
            reg = await Register(http, gw.url, gw.add_client()).login()
            assert await obs.wait_for(lambda: link_state(obs, gw)) == "online"
            assert (await reg.call("POST", "/v1/sales", card_sale("C-1", "40.00")))[0] == 201
            assert (await reg.call("POST", "/v1/sales", card_sale("C-2", "80.00")))[0] == 201
            await obs.wait_for(lambda: link_state(obs, gw) == silent)
            small = await refund_one(reg, "C-1")
            assert small["offline"] is True
            body = {"sale_id": "C-2", "lines": [{"line_id": "1", "quantity": 1}]}
            status, refused = await reg.call("POST", "/v1/refunds", body, key="over")
            assert status == 409
            assert refused["type"].endswith("offline-limit-exceeded")
            body["refund_to"] = "store_credit"
            status, credit = await reg.call("POST", "/v1/refunds", body, key="credit")
            assert status == 201
            assert credit["tenders"][0]["type"] == "store_credit"
            status, ready = await reg.call("GET", "/readyz")
            assert ready["hq_link"] == {"online": False, "state": silent}
        finally:
            gw.stop()
