"""The gateway's reconciliation over a real broker and a real ledger file: an HqLink in the
test's event loop (as `tests/hqlink/inproc.py` runs one) with the test playing HQ, which
sends digests and watches reports, alerts and health on the broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from edge.api.orders import OrderJournal
from edge.bus import EventBus
from edge.contract.payloads import dumps
from edge.contract.timefmt import iso, utcnow
from edge.domain.views import RefundView
from edge.hqlink.link import HqLink
from edge.hqlink.settings import HqSettings, ReconSettings
from edge.ledger.db import open_sync
from edge.ledger.ledger import Ledger
from edge.ledger.outbox import Origin
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import PREFIX, Observer, fast_broker
from tests.hqlink.inproc import refund_one_unit

STORE = "0042"
BASE = f"{PREFIX}/{STORE}/gw-01"
WATCHED = [f"{BASE}/{leaf}" for leaf in ("recon/report", "alerts", "health")]


@contextmanager
def mosquitto(workdir: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(workdir / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def open_ledger(tmp_path: Path, bus: EventBus | None = None) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite3", bus or EventBus(), Origin(STORE, "gw-01"))


async def make_refund(ledger: Ledger, sale_id: str, units: int = 1) -> RefundView:
    """A real cash sale of `units` at 1.00 and a real refund of one unit of it."""
    return await refund_one_unit(ledger, sale_id, units)


async def backdate(ledger: Ledger, return_id: str, age: timedelta) -> datetime:
    """Make a refund look `age` old (as if made then); returns its new creation time."""
    at = utcnow() - age
    await ledger.write(
        lambda conn: conn.execute(
            "UPDATE returns SET created_at = ?1, updated_at = ?1 WHERE return_id = ?2",
            (iso(at), return_id),
        )
    )
    return at


async def settle(ledger: Ledger, return_id: str) -> None:
    await ledger.write(
        lambda conn: conn.execute(
            "UPDATE returns SET status = 'settled', updated_at = ? WHERE return_id = ?",
            (iso(utcnow()), return_id),
        )
    )


def entry(refund: RefundView, n: int, **changes: Any) -> dict[str, Any]:
    """The digest entry HQ holds for a gateway refund, the same as the ledger's."""
    data: dict[str, Any] = {
        "return_id": refund.return_id,
        "external_ref": f"ERP-{n}",
        "source": "gateway",
        "sale_id": refund.sale_id,
        "order_id": None,
        "currency": refund.currency,
        "total": refund.total,
        "tax": refund.tax,
        "tenders": [{"type": t.type, "amount": t.amount} for t in refund.tenders],
        "lines": [
            {
                "line_id": ln.line_id,
                "sku": "SKU-1",
                "category": None,
                "quantity": ln.quantity,
                "amount": ln.amount,
                "tax": ln.tax,
            }
            for ln in refund.lines
        ],
        "status": refund.status,
        "processor_ref": None,
        "erp_ref": None,
        "created_at": refund.created_at,
        "settled_at": None,
        "erp_posted_at": None,
        "edited_by": None,
        "approved_by": refund.approved_by,
        "kind": refund.kind,
    }
    data.update(changes)
    return data


def hq_only_entry(external_ref: str, total: str, created_at: datetime) -> dict[str, Any]:
    """A refund customer service made at HQ, unknown to the store."""
    return {
        "return_id": None,
        "external_ref": external_ref,
        "source": "customer_service",
        "sale_id": None,
        "order_id": None,
        "currency": "USD",
        "total": total,
        "tax": "0.00",
        "tenders": [{"type": "store_credit", "amount": total}],
        "lines": [],
        "status": "settled",
        "processor_ref": None,
        "erp_ref": None,
        "created_at": iso(created_at),
        "settled_at": iso(created_at),
        "erp_posted_at": None,
        "edited_by": "cs-agent-4",
        "approved_by": None,
        "kind": "goodwill",
    }


def digest(digest_id: str, entries: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    """A digest of the last hour, made now."""
    now = utcnow()
    body: dict[str, Any] = {
        "digest_id": digest_id,
        "from": iso(now - timedelta(hours=1)),
        "to": iso(now + timedelta(seconds=1)),
        "generated_at": iso(now),
        "refunds": entries,
    }
    body.update(changes)
    return body


@dataclass
class ReconRig:
    link: HqLink
    ledger: Ledger
    hq: Observer

    def send(self, body: dict[str, Any] | bytes) -> None:
        payload = body if isinstance(body, bytes) else dumps(body)
        self.hq.client.publish(f"{BASE}/recon/digest", payload, qos=1)

    def reports(self) -> list[dict[str, Any]]:
        return [
            json.loads(m.payload) for m in self.hq.messages if m.topic == f"{BASE}/recon/report"
        ]

    async def report_for(self, digest_id: str | None, seen: int = 0) -> dict[str, Any]:
        """The next report for `digest_id` after the first `seen` of them."""

        def found() -> dict[str, Any] | None:
            mine = [r for r in self.reports() if r["digest_id"] == digest_id]
            return mine[seen] if len(mine) > seen else None

        return await self.hq.wait_for(found, within=20)

    def alerts(self, state: str = "raised") -> list[dict[str, Any]]:
        msgs = [json.loads(m.payload) for m in self.hq.messages if m.topic == f"{BASE}/alerts"]
        return [a for a in msgs if a["alert"] == "recon-mismatch" and a["state"] == state]

    async def health_where(self, check: Any) -> dict[str, Any]:
        """The first health message (from now on) for which `check(health)` holds."""

        def found() -> dict[str, Any] | None:
            health = self.hq.latest(f"{BASE}/health")
            return health if health is not None and check(health) else None

        return await self.hq.wait_for(found, within=20)

    def now_in_db(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """A synchronous read of the ledger file, for `wait_for` predicates (re-checked as
        broker messages arrive: health comes every 0.2 s)."""
        conn = open_sync(self.ledger.path, read_only=True)
        try:
            return [tuple(r) for r in conn.execute(sql, args).fetchall()]
        finally:
            conn.close()

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self.ledger.read(
            lambda conn: [tuple(r) for r in conn.execute(sql, args).fetchall()]
        )


@asynccontextmanager
async def recon_rig(
    tmp_path: Path, port: int, hq: Observer | None = None, **recon: Any
) -> AsyncIterator[ReconRig]:
    """A running HqLink on the ledger in `tmp_path`, with `[recon]` settings `recon`."""
    hq_settings = HqSettings.model_validate(
        {"broker": fast_broker(port).model_dump(), "ack_timeout_s": 5.0, "health_interval_s": 0.2}
    )
    bus = EventBus()
    async with open_ledger(tmp_path, bus) as ledger:
        observer = hq or Observer(port, WATCHED)
        if hq is None:
            await observer.__aenter__()
        link = HqLink(
            hq_settings,
            ledger=ledger,
            bus=bus,
            data_dir=tmp_path,
            version="test",
            journal_order=OrderJournal(ledger).record,
            recon=ReconSettings.model_validate(recon),
        )
        try:
            async with link:
                task = asyncio.create_task(link.run(), name="test-hq-link")
                try:
                    async with asyncio.timeout(10):
                        await link.client.wait_connected()
                    yield ReconRig(link, ledger, observer)
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
        finally:
            if hq is None:
                await observer.__aexit__(None, None, None)
