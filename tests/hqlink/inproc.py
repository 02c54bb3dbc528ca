"""The HQ link in the test's own event loop, over a real ledger file and a real broker, with
the test playing HQ by hand (it decides what to ack and when)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from edge.api.orders import OrderJournal
from edge.bus import EventBus
from edge.contract.payloads import dumps
from edge.contract.timefmt import utcnow
from edge.domain.views import RefundView, dump
from edge.events import OutboxAppended, RefundUpdated
from edge.hqlink.link import HqLink
from edge.hqlink.settings import HqSettings
from edge.ledger.ledger import Ledger
from edge.ledger.outbox import Origin, append_event
from edge.ledger.refunds import LineRequest, RefundCommand, RefundRules
from tests.hqlink.harness import PREFIX, Observer, cash_sale, fast_broker

BASE = f"{PREFIX}/0042/gw-01"
RULES = RefundRules(
    window_days=30,
    approval_thresholds={"USD": Decimal("1000")},
    tender_order=["card", "gift_card", "store_credit", "cash"],
    refund_shipping=False,
    store_credit_prefix="SC",
    offline_per_refund={},
    offline_pending_cap={},
)


async def refund_one_unit(ledger: Ledger, sale_id: str, units: int) -> RefundView:
    """A real cash sale of `units` at 1.00 (recorded once) and a real refund of one unit."""
    if await ledger.sale(sale_id) is None:
        await OrderJournal(ledger).record(cash_sale(sale_id, units))
    cmd = RefundCommand(
        client_id="test",
        idempotency_key=f"k-{sale_id}-{uuid.uuid4().hex}",
        fingerprint="f",
        kind="receipt",
        sale_id=sale_id,
        lines=(LineRequest("1", 1, None, False),),
        refund_to="original",
        amount=None,
        currency=None,
        reason=None,
        note=None,
        register_id=None,
        approved_by=None,
        offline=False,
    )
    return (await ledger.create_refund(cmd, RULES)).refund


@dataclass
class LinkRig:
    link: HqLink
    ledger: Ledger
    bus: EventBus
    hq: Observer
    updates: list[RefundUpdated] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.hq.messages if m.topic == f"{BASE}/events"]

    def ack(self, event_id: str, status: str = "accepted", **extra: Any) -> None:
        body = {"event_id": event_id, "status": status, **extra}
        self.hq.client.publish(f"{BASE}/acks", dumps(body), qos=1)

    def announce_hq(self, state: str = "online") -> None:
        body = dumps({"state": state, "instance": "test-hq"})
        self.hq.client.publish(f"{PREFIX}/_hq/presence/test-hq", body, qos=1, retain=True)

    async def add_events(self, count: int) -> list[int]:
        """`count` small sale.recorded events, committed like the ledger would."""
        origin = self.ledger.origin

        def job(conn: Any) -> list[int]:
            at: datetime = utcnow()
            return [
                append_event(conn, origin, "sale.recorded", {"n": n}, at).seq for n in range(count)
            ]

        seqs = await self.ledger.write(job)
        self.bus.publish(OutboxAppended(last_seq=seqs[-1]))
        return seqs

    async def add_refund(self, sale_id: str = "S-1") -> dict[str, Any]:
        """A real sale and a real one-unit cash refund of it."""
        return dump(await refund_one_unit(self.ledger, sale_id, units=10))


@asynccontextmanager
async def link_rig(
    tmp_path: Path, port: int, broker: dict[str, Any] | None = None, **settings: Any
) -> AsyncIterator[LinkRig]:
    given = {
        "broker": fast_broker(port, **(broker or {})).model_dump(),
        "ack_timeout_s": 0.5,
        "health_interval_s": 0.2,
        **settings,
    }
    # None means "leave the setting at its shipped default"
    hq_settings = HqSettings.model_validate({k: v for k, v in given.items() if v is not None})
    bus = EventBus()
    topics = [f"{BASE}/{leaf}" for leaf in ("events", "alerts", "cmd-result", "lookup", "health")]
    async with (
        Ledger(tmp_path / "ledger.sqlite3", bus, Origin("0042", "gw-01")) as ledger,
        Observer(port, topics) as hq,
    ):
        link = HqLink(
            hq_settings,
            ledger=ledger,
            bus=bus,
            data_dir=tmp_path,
            version="test",
            journal_order=OrderJournal(ledger).record,
        )
        rig = LinkRig(link, ledger, bus, hq)
        bus.subscribe(RefundUpdated, rig.updates.append)
        async with link:
            task = asyncio.create_task(link.run(), name="test-hq-link")
            try:
                async with asyncio.timeout(10):
                    await link.client.wait_connected()
                yield rig
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
