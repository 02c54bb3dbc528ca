"""Digests at HQ: built from the `refunds` table and what the ERP holds, as the contract's
model, on SQLite and PostgreSQL. The helpers here (a realistic `refund.requested`, a store
with settled refunds) serve the other reconciliation tests too."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from edge.contract.payloads import encode
from edge.contract.recon import Digest
from edge.contract.timefmt import iso
from edge.hq import settlement
from edge.hq import store as hq_store
from edge.hq.recon import digest as recon_digest
from edge.hq.recon.digest import Period
from edge.hq.recon.inject import inject
from edge.hq.settlement import Decided
from edge.hq.store import HqStore, Incoming
from tests.hq.test_store import envelope

STORE, GW = "0042", "gw-01"
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DAY = Period(T0 - timedelta(hours=12), T0 + timedelta(hours=12))


def refund_data(
    return_id: str,
    *,
    created_at: datetime = T0,
    sale_id: str | None = "S-1",
    channel: str | None = "store",
    lines: list[tuple[str, int, str, str]] | None = None,  # line_id, qty, amount, tax
    discount: str = "0.00",
    shipping: str = "0.00",
    tenders: list[dict[str, Any]] | None = None,
    kind: str = "receipt",
    currency: str = "USD",
    approved_by: str | None = None,
) -> dict[str, Any]:
    """`refund.requested` data as the gateway's ledger writes it (`RefundRequested`)."""
    lines = [("1", 3, "30.00", "1.00"), ("2", 1, "10.00", "0.80")] if lines is None else lines
    paid = sum((Decimal(a) for _, _, a, _ in lines), Decimal(0))
    tax = sum((Decimal(t) for _, _, _, t in lines), Decimal(0))
    total = paid + Decimal(shipping) + tax
    if tenders is None:
        tenders = [
            {"type": "card", "amount": str(total), "tender_id": "T1", "payment_token": "tok_1"}
        ]
    return {
        "return_id": return_id,
        "sale_id": sale_id,
        "kind": kind,
        "status": "pending",
        "offline": False,
        "currency": currency,
        "subtotal": str(paid + Decimal(discount) + Decimal(shipping)),
        "discount": discount,
        "tax": str(tax),
        "total": str(total),
        "shipping": {"amount": shipping, "tax": "0.00"},
        "lines": [
            {"line_id": i, "quantity": q, "amount": a, "tax": t, "reason": None, "restock": True}
            for i, q, a, t in lines
        ],
        "tenders": tenders,
        "refund_to": "original",
        "reason": "damaged",
        "note": None,
        "approved_by": approved_by,
        "created_at": iso(created_at),
        "updated_at": iso(created_at),
        "processor_ref": None,
        "erp_ref": None,
        "decline_reason": None,
        "register_id": "lane-3",
        "client_id": "lane-3-app",
        "sale_channel": channel,
    }


async def add_refunds(
    hq: HqStore,
    refunds: list[dict[str, Any]],
    outcomes: dict[str, str] | None = None,
    gateway_id: str = GW,
) -> None:
    """Ingest the refunds as a gateway sends them, then record their outcomes (settled
    unless `outcomes` says `declined` or `received`)."""
    outcomes = outcomes or {}
    items = []
    for n, data in enumerate(refunds, start=1):
        env = {**envelope(n, "refund.requested", **data), "gateway_id": gateway_id}
        items.append(Incoming(STORE, gateway_id, json.dumps(env).encode()))
    await hq.write(partial(hq_store.ingest, items=items))
    decided = []
    for data in refunds:
        status = outcomes.get(data["return_id"], "settled")
        if status == "received":
            continue
        rid = data["return_id"]
        erp = f"ERP-{rid}" if status == "settled" else None
        decided.append(Decided(rid, status, f"SIM-{rid}", erp, None))
    await hq.write(partial(settlement.record_decisions, decided=decided, instance="test"))


async def digest_of(hq: HqStore, gateway_id: str = GW, period: Period = DAY) -> Digest:
    (digest,) = await hq.read(
        partial(
            recon_digest.build_digests,
            store_id=STORE,
            gateway_id=gateway_id,
            period=period,
            now=T0 + timedelta(days=1),
        )
    )
    return digest


@pytest.fixture
async def hq(db_url: str) -> AsyncIterator[HqStore]:
    async with HqStore(db_url) as opened:
        yield opened


async def test_the_digest_lists_hq_refunds_as_the_contract_says(hq: HqStore) -> None:
    await hq.write(
        partial(
            hq_store.load_orders,
            sales=[
                {
                    "sale_id": "WEB-9",
                    "lines": [{"line_id": "1", "sku": "SKU-9", "category": "shoes"}],
                }
            ],
        )
    )
    refunds = [
        refund_data("R-1"),
        refund_data("R-2", sale_id="WEB-9", channel="online", lines=[("1", 1, "20.00", "1.60")]),
        refund_data("R-3"),
        refund_data("R-4", sale_id=None, kind="no_receipt", lines=[], shipping="15.00"),
        refund_data("R-OLD", created_at=T0 - timedelta(days=2)),
        refund_data("R-LATE", created_at=DAY.to),  # `to` is exclusive
    ]
    await add_refunds(hq, refunds, {"R-3": "declined", "R-4": "received"})
    digest = await digest_of(hq)
    again = Digest.model_validate_json(encode(digest))  # as a gateway reads it off the wire
    assert again == digest
    assert json.loads(encode(digest))["from"] == iso(DAY.from_)
    by_id = {e.return_id: e for e in digest.refunds}
    assert set(by_id) == {"R-1", "R-2", "R-3", "R-4"}
    one = by_id["R-1"]
    assert one.source == "gateway"
    assert (one.sale_id, one.order_id) == ("S-1", None)
    assert (one.currency, one.total, one.tax) == ("USD", Decimal("41.80"), Decimal("1.80"))
    assert [(t.type, t.amount) for t in one.tenders] == [("card", Decimal("41.80"))]
    assert [(x.line_id, x.quantity, x.amount, x.tax) for x in one.lines] == [
        ("1", 3, Decimal("30.00"), Decimal("1.00")),
        ("2", 1, Decimal("10.00"), Decimal("0.80")),
    ]
    assert (one.status, one.processor_ref, one.erp_ref) == ("settled", "SIM-R-1", "ERP-R-1")
    assert one.external_ref == "ERP-R-1"
    assert one.created_at == T0
    assert one.settled_at is not None
    assert one.erp_posted_at == one.settled_at
    assert (one.kind, one.edited_by, one.approved_by) == ("receipt", None, None)
    online = by_id["R-2"]
    assert (online.order_id, online.lines[0].sku, online.lines[0].category) == (
        "WEB-9",
        "SKU-9",
        "shoes",
    )
    declined = by_id["R-3"]
    assert (declined.status, declined.settled_at, declined.erp_ref) == ("declined", None, None)
    assert declined.external_ref == "HQ-R-3"
    pending = by_id["R-4"]
    assert (pending.status, pending.sale_id, pending.lines, pending.kind) == (
        "pending",
        None,
        [],
        "no_receipt",
    )
    assert pending.total == Decimal("15.00")


async def test_erp_only_refunds_are_in_the_digest_of_their_gateway(hq: HqStore) -> None:
    await add_refunds(hq, [refund_data("R-1")])
    await add_refunds(hq, [refund_data("R-9")], gateway_id="gw-02")
    planted = await hq.write(
        partial(inject, what="register-bypass", store_id=STORE, gateway_id=GW, now=T0)
    )
    everywhere = await hq.write(
        partial(inject, what="cross-team-handoff", store_id=STORE, now=T0 + timedelta(minutes=1))
    )
    assert everywhere.gateway_id is None  # two gateways known: it goes to both
    one, two = await digest_of(hq), await digest_of(hq, "gw-02")
    refs_one = {e.external_ref for e in one.refunds}
    refs_two = {e.external_ref for e in two.refunds}
    assert refs_one == {"ERP-R-1", *planted.added, *everywhere.added}
    assert refs_two == {"ERP-R-9", *everywhere.added}
    (bypass,) = [e for e in one.refunds if e.external_ref in planted.added]
    assert (bypass.return_id, bypass.source, bypass.kind) == (None, "register", "cash")
    assert [t.type for t in bypass.tenders] == ["cash"]
    assert bypass.approved_by is None


async def test_a_large_period_is_split_where_created_at_changes(
    hq: HqStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recon_digest, "DIGEST_REFUNDS_MAX", 2)
    times = [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    await add_refunds(hq, [refund_data(f"R-{n}", created_at=t) for n, t in enumerate(times)])
    digests = await hq.read(
        partial(recon_digest.build_digests, store_id=STORE, gateway_id=GW, period=DAY, now=T0)
    )
    assert [len(d.refunds) for d in digests] == [1, 2, 1]
    assert digests[0].from_ == DAY.from_
    assert digests[-1].to == DAY.to
    for a, b in itertools.pairwise(digests):
        assert a.to == b.from_
    for d in digests:
        assert all(d.from_ <= e.created_at < d.to for e in d.refunds)
    assert len({d.digest_id for d in digests}) == 3


async def test_scheduled_slots_are_claimed_once(hq: HqStore) -> None:
    await add_refunds(hq, [refund_data("R-1")])
    digest = await digest_of(hq)
    record = partial(
        recon_digest.record_digest,
        store_id=STORE,
        gateway_id=GW,
        trigger="schedule",
        instance="hq-0",
        slot="0042/gw-01/x/0",
    )
    assert await hq.write(partial(record, digest=digest)) is True
    other = digest.model_copy(update={"digest_id": "D-other"})
    assert await hq.write(partial(record, digest=other)) is False


def test_slots() -> None:
    now = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
    assert recon_digest.daily_slot(now, 2) == datetime(2026, 11, 21, 2, tzinfo=UTC)
    assert recon_digest.daily_slot(now, 1) == datetime(2026, 11, 22, 1, tzinfo=UTC)
    assert recon_digest.interval_slot(now, 3600) == datetime(2026, 11, 22, 1, tzinfo=UTC)
