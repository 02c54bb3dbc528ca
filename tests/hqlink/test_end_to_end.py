"""A refund recorded at the gateway reaches the HQ service once and comes back settled."""

from __future__ import annotations

import aiohttp

from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import PREFIX, Gateway, HqService, Observer, Register, card_sale


async def test_refund_is_settled_by_hq_and_visible_on_the_lan(tmp_path, broker: Mosquitto) -> None:
    gw = Gateway(tmp_path, broker.port)
    hq = HqService(tmp_path, broker.port)
    topics = [f"{PREFIX}/+/+/acks", f"{PREFIX}/_hq/presence/+", f"{PREFIX}/+/+/health"]
    async with Observer(broker.port, topics) as obs, aiohttp.ClientSession() as http:
        await hq.start(obs)
        await gw.start()
        try:
            reg = await Register(http, gw.url, gw.add_client()).login()
            await obs.wait_for(
                lambda: (
                    (obs.latest(f"{gw.base}/health") or {}).get("link", {}).get("state") == "online"
                )
            )
            status, _ = await reg.call("POST", "/v1/sales", card_sale("S-1", "25.00"))
            assert status == 201
            status, refund = await reg.call(
                "POST",
                "/v1/refunds",
                {"sale_id": "S-1", "lines": [{"line_id": "1", "quantity": 1}]},
                key="k1",
            )
            assert status == 201, refund
            assert refund["offline"] is False
            outcome = await obs.wait_for(lambda: obs.outcomes.get(refund["return_id"]))
            assert outcome["status"] == "settled"
            health = await obs.wait_for(
                lambda: (
                    (h := obs.latest(f"{gw.base}/health"))
                    and h["refunds_today"] == 1
                    and h["refunds_awaiting_hq"] == 0
                    and h
                )
            )
            assert health["outbox"]["pending"] == 0
            status, now = await reg.call("GET", f"/v1/refunds/{refund['return_id']}")
            assert now["status"] == "settled"
            assert now["processor_ref"] == outcome["processor_ref"]
            assert now["erp_ref"].startswith("ERP-")
        finally:
            gw.stop()
            hq.stop()
