"""An HQ that implements only the contract's MQTT topics gets every event and look-up from a
gateway on its default configuration, and the gateway's offline behaviour follows from the
broker connection and HQ's acks alone."""

from __future__ import annotations

from typing import Any

from tests.brokers import Broker

from .peers import ContractHq, Gateway, contract_sale, slug

MANAGER_PIN = "739154"


def event_ids(hq: ContractHq, kind: str) -> list[str]:
    return [e["event_id"] for e in hq.events if e["type"] == kind]


async def test_events_arrive_in_seq_order_and_are_resent_until_acked(
    gateway: Gateway, broker: Broker
) -> None:
    register = gateway.add_client("lane-3-app")
    with ContractHq(broker.port) as hq:
        hq.acking = False  # this HQ loses its first acks
        gateway.start()
        async with register:
            status, sale = await register.call("POST", "/v1/sales", contract_sale("S-1"))
            assert status == 201, sale
            first = await hq.until(lambda: event_ids(hq, "sale.recorded"))
            # not acked: the same event again, same event_id, after ack_timeout
            await hq.until(lambda: len(event_ids(hq, "sale.recorded")) >= 2)
            assert set(event_ids(hq, "sale.recorded")) == {first[0]}
            hq.acking = True
            hq.ack(first[0])
            body = {
                "sale_id": "S-1",
                "lines": [{"line_id": "1", "quantity": 1, "reason": "damaged"}],
            }
            status, refund = await register.refund(body, "k-1")
            assert status == 201, refund
            requested = await hq.until(lambda: event_ids(hq, "refund.requested"))
            await register.wait_until("/readyz", lambda r: r["outbox"]["pending"] == 0)
    envelopes = {e["event_id"]: e for e in hq.events}
    seqs = sorted(e["seq"] for e in envelopes.values())
    assert seqs == list(range(1, len(seqs) + 1))  # gapless, each seq under one event_id
    assert envelopes[first[0]]["seq"] == 1
    refund_event = envelopes[requested[0]]
    assert (refund_event["store_id"], refund_event["gateway_id"]) == ("0042", "gw-01")
    assert refund_event["data"]["return_id"] == refund["return_id"]
    arrival = [e["seq"] for e in hq.events]
    assert arrival == sorted(arrival)  # published in seq order, re-sends included


async def test_offline_flag_and_limits_while_the_broker_is_down(
    gateway: Gateway, broker: Broker
) -> None:
    register = gateway.add_client("lane-3-app")
    gateway.cli("managers", "add", "m-17", "--name", "Dana", "--pin-stdin", stdin=MANAGER_PIN)
    approval = {"manager_id": "m-17", "pin": MANAGER_PIN}
    with ContractHq(broker.port) as hq:
        gateway.start()
        async with register:
            for sale_id, price in (("S-1", "19.99"), ("S-2", "19.99"), ("S-BIG", "300.00")):
                status, _ = await register.call(
                    "POST", "/v1/sales", contract_sale(sale_id, unit_price=price)
                )
                assert status == 201
            await register.wait_until("/readyz", lambda r: r["hq_link"]["online"])
            one = {"sale_id": "S-1", "lines": [{"line_id": "1", "quantity": 1}]}
            status, online = await register.refund(one, "on-1")
            assert (status, online["offline"]) == (201, False)

            broker.stop()
            await register.wait_until("/readyz", lambda r: not r["hq_link"]["online"])
            two = {"sale_id": "S-2", "lines": [{"line_id": "1", "quantity": 1}]}
            status, offline = await register.refund(two, "off-1")
            assert status == 201, offline
            assert offline["offline"] is True
            assert offline["tenders"][0]["type"] == "card"
            big: dict[str, Any] = {
                "sale_id": "S-BIG",
                "lines": [{"line_id": "1", "quantity": 1}],
                "approval": approval,
            }
            status, refused = await register.refund(big, "off-big")
            assert (status, slug(refused)) == (409, "offline-limit-exceeded")
            status, credit = await register.refund({**big, "refund_to": "store_credit"}, "off-sc")
            assert status == 201, credit
            assert credit["offline"] is True
            assert credit["tenders"][0]["type"] == "store_credit"
            assert credit["tenders"][0]["store_credit_code"]

            broker.start()
            wanted = {online["return_id"], offline["return_id"], credit["return_id"]}
            await hq.until(
                lambda: (
                    wanted
                    <= {
                        e["data"].get("return_id")
                        for e in hq.events
                        if e["type"] == "refund.requested"
                    }
                )
            )
            await register.wait_until("/readyz", lambda r: r["outbox"]["pending"] == 0)


async def test_order_look_up_is_answered_by_that_hq(gateway: Gateway, broker: Broker) -> None:
    order = contract_sale("WEB-1001", channel="online")
    register = gateway.add_client("lane-3-app")
    with ContractHq(broker.port, orders={"WEB-1001": order}) as hq:
        gateway.start()
        async with register:
            # right after start the broker connection may still be on its way
            await register.wait_until("/readyz", lambda r: r["hq_link"]["online"])
            status, found = await register.call("POST", "/v1/returns/lookup", {"code": "WEB-1001"})
            assert status == 200, found
            assert found["sale"]["sale_id"] == "WEB-1001"
            assert found["sale"]["channel"] == "online"
            assert [req["code"] for req in hq.lookups] == ["WEB-1001"]
            body = {"sale_id": "WEB-1001", "lines": [{"line_id": "1", "quantity": 1}]}
            status, refund = await register.refund(body, "web-1")
            assert status == 201, refund
            assert refund["tenders"][0]["payment_token"] == "tok_9f8e7d6c"
            status, missing = await register.call("POST", "/v1/returns/lookup", {"code": "WEB-404"})
            assert (status, slug(missing)) == (404, "not-found")
            assert [req["code"] for req in hq.lookups] == ["WEB-1001", "WEB-404"]
