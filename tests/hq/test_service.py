"""The reference HQ service in process, against a real broker: shared load, retries,
look-ups."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from edge.contract.payloads import dumps
from edge.hq import store as hq_store
from edge.hq.processor import (
    Decision,
    ProcessorUnavailable,
    RefundRequest,
    SimulatedErp,
    SimulatedProcessor,
    SimulatedSettings,
)
from edge.hq.service import HqService, HqServiceSettings
from edge.hq.store import HqStore
from edge.hq.tables import events
from tests.hq.test_store import envelope
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import PREFIX, Observer, fast_broker

GW = f"{PREFIX}/0042/gw-01"


class FlakyProcessor:
    """Unavailable for the first `failures` calls, then settles."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def refund(self, request: RefundRequest) -> Decision:
        self.calls += 1
        if self.calls <= self.failures:
            raise ProcessorUnavailable("down for maintenance")
        return Decision("settled", f"FLAKY-{request.return_id}")


@asynccontextmanager
async def hq_instances(
    db_url: str, port: int, count: int, processor: Any = None
) -> AsyncIterator[list[HqService]]:
    async with AsyncExitStack() as stack:
        services = []
        for n in range(count):
            settings = HqServiceSettings(
                broker=fast_broker(port),
                db_url=db_url,
                instance=f"hq-{n}",
                retry_initial_s=0.05,
                retry_max_s=0.1,
            )
            service = HqService(
                settings,
                HqStore(settings.store_url()),
                processor or SimulatedProcessor(SimulatedSettings()),
                SimulatedErp(),
            )
            await stack.enter_async_context(service)
            task = asyncio.create_task(service.run())
            stack.push_async_callback(asyncio.gather, task, return_exceptions=True)
            stack.callback(task.cancel)
            async with asyncio.timeout(10):
                await service.client.wait_connected()
            services.append(service)
        yield services


async def test_instances_share_the_load_and_hold_each_event_once(
    db_url: str, broker: Mosquitto
) -> None:
    async with (
        Observer(broker.port, [f"{GW}/acks"]) as gw,
        hq_instances(db_url, broker.port, 2) as (one, two),
    ):
        envs = [envelope(n) for n in range(1, 301)]
        for env in envs + envs:  # every event twice, as after a reconnect
            gw.client.publish(f"{GW}/events", json.dumps(env).encode(), qos=1)
        await gw.wait_for(lambda: sum(len(a) for a in gw.acks.values()) >= 600)
        assert all(len(gw.acks[e["event_id"]]) == 2 for e in envs)
        assert one.counters["events_new"] > 0
        assert two.counters["events_new"] > 0
        assert one.counters["events_new"] + two.counters["events_new"] == 300
        new_and_dup = sum(
            s.counters["events_new"] + s.counters["events_duplicate"] for s in (one, two)
        )
        assert new_and_dup == 600
    async with HqStore(db_url) as hq:

        async def held(conn: AsyncConnection) -> tuple[int, int]:
            query = select(func.count(), func.count(events.c.event_id.distinct()))
            total, distinct = (await conn.execute(query)).one()
            return int(total), int(distinct)

        assert await hq.read(held) == (300, 300)
        (stream,) = await hq.read(hq_store.stream_report)
        assert stream["contiguous_through"] == 300


async def test_an_unavailable_processor_is_retried(db_url: str, broker: Mosquitto) -> None:
    processor = FlakyProcessor(failures=2)
    async with (
        Observer(broker.port, [f"{GW}/acks"]) as gw,
        hq_instances(db_url, broker.port, 1, processor),
    ):
        refund = envelope(1, "refund.requested", return_id="R-0042-1", currency="USD", total="9")
        gw.client.publish(f"{GW}/events", json.dumps(refund).encode(), qos=1)
        outcome = await gw.wait_for(lambda: gw.outcomes.get("R-0042-1"))
        statuses = [a["status"] for a in gw.acks[refund["event_id"]]]
        assert statuses == ["accepted", "settled"]
        assert outcome["processor_ref"] == "FLAKY-R-0042-1"
        assert outcome["erp_ref"].startswith("ERP-")
        assert processor.calls == 3


async def test_declines_by_rule(db_url: str, broker: Mosquitto) -> None:
    async with (
        Observer(broker.port, [f"{GW}/acks"]) as gw,
        hq_instances(db_url, broker.port, 1),
    ):
        big = {"return_id": "R-0042-BIG", "currency": "USD", "total": "900.00"}
        big["tenders"] = [{"type": "card", "amount": "900.00", "payment_token": "tok_1"}]  # type: ignore[assignment]
        gw.client.publish(
            f"{GW}/events", json.dumps(envelope(1, "refund.requested", **big)).encode(), qos=1
        )
        outcome = await gw.wait_for(lambda: gw.outcomes.get("R-0042-BIG"))
        assert outcome["status"] == "declined"
        assert "manual review" in outcome["reason"]


async def test_look_ups_are_answered_from_the_order_store(db_url: str, broker: Mosquitto) -> None:
    async with HqStore(db_url) as hq_db:
        await hq_db.write(partial(hq_store.load_orders, sales=[{"sale_id": "WEB-7"}]))
    async with (
        Observer(broker.port, [f"{GW}/lookup-reply"]) as gw,
        hq_instances(db_url, broker.port, 1) as (hq,),
    ):
        for n, code in enumerate(["WEB-7", "WEB-8"]):
            body = {"request_id": f"q{n}", "code": code, "reply_to": f"{GW}/lookup-reply"}
            gw.client.publish(
                f"{GW}/lookup",
                dumps(body),
                qos=1,
                response_topic=f"{GW}/lookup-reply",
                correlation=f"q{n}".encode(),
            )
        foreign = {"request_id": "q9", "code": "WEB-7", "reply_to": f"{PREFIX}/0001/x/lookup-reply"}
        gw.client.publish(f"{GW}/lookup", dumps(foreign), qos=1)
        replies = await gw.wait_for(lambda: len(gw.messages) >= 2 and gw.messages)
        found = {json.loads(m.payload)["request_id"]: m for m in replies}
        assert json.loads(found["q0"].payload)["sale"]["sale_id"] == "WEB-7"
        assert found["q0"].correlation == b"q0"
        assert json.loads(found["q1"].payload) == {"request_id": "q1", "found": False, "sale": None}
        await gw.wait_for(lambda: hq.counters["malformed_messages"] == 1 or None)
