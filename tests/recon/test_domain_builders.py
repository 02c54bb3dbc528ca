"""Builders for the reconciliation tests: store refunds priced by the gateway's own rules
(`price_sale`, `quote_refund`), and HQ entries that mirror them; checked here against the
ledger-side figures so every other test starts from a consistent refund."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from edge.domain.money import ZERO
from edge.domain.recon.recompute import gateway_figure
from edge.domain.recon.records import HqEntry, HqLine, SoldLine, StoreLine, StoreRefund
from edge.domain.refund import RequestedLine, SaleState, quote_refund
from edge.domain.sale import LineInput, TenderInput, price_sale
from edge.domain.tenders import OriginalTender

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
T0 = NOW - timedelta(days=3)
PERIOD_FROM = NOW - timedelta(days=7)
PERIOD_TO = NOW
SETTLE = timedelta(hours=24)
ORDER = ("card", "gift_card", "store_credit", "cash")

# (quantity sold, unit price, line discount, line tax, units refunded, category)
Line = tuple[int, str, str, str, int, str | None]


def sale_refund(
    return_id: str,
    *,
    sale_id: str | None = None,
    lines: Sequence[Line] = ((1, "19.99", "0", "1.60", 1, "shoes"),),
    order_discount: str = "0",
    returned_before: dict[str, int] | None = None,
    currency: str = "USD",
    created_at: datetime = T0,
    sale_tender: str = "card",
    refund_to: str = "original",
    **overrides: Any,
) -> StoreRefund:
    """A receipt refund of a sale, priced and quoted exactly as the gateway does."""
    inputs = [
        LineInput(str(i + 1), q, Decimal(unit), Decimal(disc), Decimal(tax))
        for i, (q, unit, disc, tax, _, _) in enumerate(lines)
    ]
    net = sum((ln.quantity * ln.unit_price - ln.discount for ln in inputs), ZERO)
    total = net - Decimal(order_discount) + sum((ln.tax for ln in inputs), ZERO)
    priced = price_sale(
        currency,
        lines=inputs,
        order_discount=Decimal(order_discount),
        shipping_amount=ZERO,
        shipping_tax=ZERO,
        tenders=[TenderInput("t1", sale_tender, total)],
    )
    before = returned_before or {}
    state = SaleState(
        sale_id=sale_id or f"S-{return_id}",
        currency=currency,
        occurred_at=created_at - timedelta(days=1),
        lines=priced.lines,
        tenders=(
            OriginalTender("t1", sale_tender, total, "tok_x" if sale_tender == "card" else None),
        ),
        shipping_amount=ZERO,
        shipping_tax=ZERO,
        returned=before,
        refunded_by_tender={},
        shipping_refunded=False,
    )
    wanted = [RequestedLine(str(i + 1), spec[4]) for i, spec in enumerate(lines) if spec[4]]
    quote = quote_refund(
        state,
        wanted,
        now=created_at,
        window_days=30,
        refund_to=refund_to,
        tender_order=ORDER,
        refund_shipping=False,
    )
    sold = {
        p.line_id: SoldLine(
            p.line_id, p.quantity, p.unit_price, p.discount, p.order_discount, p.tax
        )
        for p in priced.lines
    }
    categories = {str(i + 1): spec[5] for i, spec in enumerate(lines)}
    refund = StoreRefund(
        return_id=return_id,
        sale_id=state.sale_id,
        currency=currency,
        total=quote.total,
        tax=quote.tax,
        tenders=tuple((t.type, t.amount) for t in quote.tenders),
        lines=tuple(
            StoreLine(
                q.line_id,
                f"SKU-{q.line_id}",
                categories[q.line_id],
                q.quantity,
                q.amount,
                q.tax,
                sold[q.line_id],
                before.get(q.line_id, 0),
            )
            for q in quote.lines
        ),
        kind="receipt",
        refund_to=refund_to,
        hq_status="settled",
        created_at=created_at,
        decided_at=created_at + timedelta(minutes=1),
        sent_at=created_at + timedelta(seconds=5),
        sale_tender_types=(sale_tender,),
        sale_order_discount=Decimal(order_discount),
        sale_lines=tuple(sold.values()),
    )
    return replace(refund, **overrides)


def unlinked_refund(
    return_id: str,
    amount: str,
    *,
    kind: str = "goodwill",
    refund_to: str = "store_credit",
    approved_by: str | None = "m-17",
    created_at: datetime = T0,
    **overrides: Any,
) -> StoreRefund:
    """A no-receipt or goodwill refund: an amount tied to no sale line."""
    tender = "cash" if refund_to == "cash" else "store_credit"
    refund = StoreRefund(
        return_id=return_id,
        sale_id=None,
        currency="USD",
        total=Decimal(amount),
        tax=ZERO,
        tenders=((tender, Decimal(amount)),),
        lines=(),
        kind=kind,  # type: ignore[arg-type]
        refund_to=refund_to,
        hq_status="settled",
        created_at=created_at,
        decided_at=created_at + timedelta(minutes=1),
        approved_by=approved_by,
        sent_at=created_at + timedelta(seconds=5),
    )
    return replace(refund, **overrides)


def entry_of(refund: StoreRefund, **overrides: Any) -> HqEntry:
    """What HQ would list for a refund it received intact."""
    online = refund.channel == "online"
    entry = HqEntry(
        return_id=refund.return_id,
        external_ref=f"HQ-{refund.return_id}",
        source="gateway",
        sale_id=None if online else refund.sale_id,
        order_id=refund.sale_id if online else None,
        currency=refund.currency,
        total=refund.total,
        tax=refund.tax,
        tenders=refund.tenders,
        lines=tuple(
            HqLine(ln.line_id, ln.sku, ln.category, ln.quantity, ln.amount, ln.tax)
            for ln in refund.lines
        ),
        status=refund.hq_status,
        created_at=refund.created_at,
        kind=refund.kind,
        settled_at=refund.decided_at if refund.hq_status == "settled" else None,
        erp_posted_at=refund.created_at + timedelta(minutes=2),
        approved_by=refund.approved_by,
    )
    return replace(entry, **overrides)


def hq_only(external_ref: str, total: str, **fields: Any) -> HqEntry:
    """A digest entry with no gateway record behind it."""
    base = HqEntry(
        return_id=None,
        external_ref=external_ref,
        source="erp",
        sale_id=None,
        order_id=None,
        currency="USD",
        total=Decimal(total),
        tax=ZERO,
        tenders=(("cash", Decimal(total)),),
        lines=(),
        status="settled",
        created_at=T0,
        kind="receipt",
        settled_at=T0,
        erp_posted_at=T0 + timedelta(minutes=2),
    )
    return replace(base, **fields)


# ---- the builders themselves --------------------------------------------------------


def test_a_built_refund_is_what_the_gateway_quotes_and_recomputes() -> None:
    r = sale_refund(
        "R-1",
        lines=((3, "3.33", "0", "1.00", 2, "toys"), (2, "50.00", "5.00", "7.60", 1, "shoes")),
        order_discount="10.00",
    )
    assert gateway_figure(r) == (r.total, r.tax)
    assert sum((a for _, a in r.tenders), ZERO) == r.total
    assert [ln.quantity for ln in r.lines] == [2, 1]
    assert sum((s.order_discount for s in r.sale_lines), ZERO) == Decimal("10.00")


def test_an_entry_mirrors_its_refund() -> None:
    r = sale_refund("R-2", channel="online")
    e = entry_of(r)
    assert (e.return_id, e.order_id, e.sale_id) == ("R-2", r.sale_id, None)
    assert (e.total, e.tax, e.tenders) == (r.total, r.tax, r.tenders)
    assert e.reference == r.reference
