"""(d) Malformed or foreign messages on every subscribed topic are logged, counted and
ignored, by the gateway and by the HQ service, and both keep working."""

from __future__ import annotations

import json

import aiohttp

from tests.hqlink.broker import Mosquitto
from tests.hqlink.faults import record_sales, refund_one
from tests.hqlink.harness import PREFIX, Gateway, HqService, Observer, Register

ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def _envelope(store: str, gateway: str, event_id: str = ULID) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "type": "sale.recorded",
            "schema": 1,
            "store_id": store,
            "gateway_id": gateway,
            "seq": 1,
            "occurred_at": "2026-11-22T10:15:00Z",
            "data": {},
        }
    ).encode()


async def test_bad_input_is_counted_and_ignored_by_both_ends(tmp_path, broker: Mosquitto) -> None:
    gw = Gateway(tmp_path, broker.port)
    hq = HqService(tmp_path, broker.port, "hq-1", "--stats-interval", "0.2")
    fake = f"{PREFIX}/0042/fake"
    topics = [
        f"{PREFIX}/+/+/acks",
        f"{PREFIX}/+/+/health",
        f"{PREFIX}/+/+/cmd-result",
        f"{PREFIX}/_hq/presence/+",
    ]
    async with Observer(broker.port, topics) as obs, aiohttp.ClientSession() as http:
        await hq.start(obs)
        await gw.start()
        try:
            reg = await Register(http, gw.url, gw.add_client()).login()
            await obs.wait_for(lambda: (obs.latest(f"{gw.base}/health") or {}).get("link"))
            bad_for_gateway = {
                f"{gw.base}/acks": [
                    b"not json",
                    b"\xff\xfe",
                    b"[]",
                    b'{"event_id": 5}',
                    json.dumps({"event_id": ULID, "status": "weird"}).encode(),
                ],
                f"{gw.base}/cmd/ping": [b"not json", b'{"args": 1}'],
                f"{gw.base}/lookup-reply": [b"{}", b"nope"],
                f"{PREFIX}/_hq/presence/intruder": [b'{"state": 3}'],
                f"{gw.base}/state": [b"garbage"],
            }
            bad_for_hq = {
                f"{fake}/events": [
                    b"x",
                    b"{}",
                    _envelope("0099", "other"),  # names another gateway than its topic
                    _envelope("0042", "fake")[:-1] + b', "seq": -3}',  # schema-invalid
                ],
                f"{fake}/lookup": [
                    b"x",
                    json.dumps(
                        {"request_id": "r", "code": "A", "reply_to": "elsewhere/x"}
                    ).encode(),
                ],
                f"{fake}/state": [b"x"],
                f"{fake}/health": [b"[1]"],
                f"{fake}/alerts": [b"{}"],
            }
            for batch in (bad_for_gateway, bad_for_hq):
                for topic, payloads in batch.items():
                    for payload in payloads:
                        obs.client.publish(topic, payload, qos=1)
            # foreign but well-formed: an ack for an event nobody sent, a reply nobody
            # asked for, a command nobody knows
            obs.client.publish(
                f"{gw.base}/acks", json.dumps({"event_id": ULID, "status": "accepted"}).encode()
            )
            obs.client.publish(
                f"{gw.base}/lookup-reply", b'{"request_id": "nobody", "found": false}'
            )
            obs.client.publish(f"{gw.base}/cmd/self-destruct", b'{"request_id": "c1"}')

            def gateway_errors() -> dict[str, int] | None:
                errors = (obs.latest(f"{gw.base}/health") or {}).get("errors", {})
                return errors if errors.get("malformed_messages", 0) >= 11 else None

            errors = await obs.wait_for(gateway_errors)
            assert errors["malformed_messages"] == 11
            assert errors["late_lookup_replies"] == 1

            def hq_counters() -> dict[str, int] | None:
                presence = obs.latest(f"{PREFIX}/_hq/presence/hq-1") or {}
                counters = presence.get("counters", {})
                return counters if counters.get("malformed_messages", 0) >= 10 else None

            counters = await obs.wait_for(hq_counters)
            # its nine, and the gateway's garbage `state`, which HQ's fleet view reads too
            assert counters["malformed_messages"] == 10
            rejected = await obs.wait_for(
                lambda: [a for a in obs.acks.get(ULID, []) if a["status"] == "rejected"]
            )
            assert len(rejected) == 2  # the envelope naming another gateway, the invalid one

            result = await obs.wait_for(lambda: obs.latest(f"{gw.base}/cmd-result"))
            assert result["ok"] is False
            assert "unknown command" in result["error"]

            # both still do their work
            sales = await record_sales(reg, 1)
            refund = await refund_one(reg, sales[0])
            outcome = await obs.wait_for(lambda: obs.outcomes.get(refund["return_id"]))
            assert outcome["status"] == "settled"
            assert gw.proc is not None
            assert gw.proc.poll() is None
            assert hq.proc is not None
            assert hq.proc.poll() is None
            assert "ignored a malformed" in gw.log.read_text()
            assert "ignored a malformed" in hq.log.read_text()
        finally:
            gw.stop()
            hq.stop()
