"""Property tests: any sale, any sequence of partial returns, amounts exact to the minor unit."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.domain.money import ZERO, currency_exponent, from_minor
from edge.domain.refund import RequestedLine, SaleState, quote_refund
from edge.domain.sale import LineInput, TenderInput, price_sale
from edge.domain.tenders import OriginalTender

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ORDER = ("card", "gift_card", "store_credit", "cash")


@st.composite
def sales(draw: st.DrawFn) -> tuple[str, list[LineInput], Decimal, list[OriginalTender]]:
    currency = draw(st.sampled_from(["USD", "EUR", "JPY", "KWD"]))
    lines = []
    for i in range(draw(st.integers(1, 4))):
        qty = draw(st.integers(1, 6))
        unit = draw(st.integers(0, 50_000))
        discount = draw(st.integers(0, qty * unit))
        tax = draw(st.integers(0, 20_000))
        lines.append(
            LineInput(
                line_id=str(i + 1),
                quantity=qty,
                unit_price=from_minor(unit, currency),
                discount=from_minor(discount, currency),
                tax=from_minor(tax, currency),
                final_sale=False,
            )
        )
    net = sum((ln.quantity * ln.unit_price - ln.discount for ln in lines), ZERO)
    net_minor = int(net.scaleb(currency_exponent(currency)))
    order_discount = from_minor(draw(st.integers(0, net_minor)), currency)
    total = net - order_discount + sum((ln.tax for ln in lines), ZERO)
    total_minor = int(total.scaleb(currency_exponent(currency)))
    cuts = sorted(draw(st.lists(st.integers(0, total_minor), max_size=3)))
    bounds = [0, *cuts, total_minor]
    kinds = draw(
        st.lists(st.sampled_from(ORDER), min_size=len(bounds) - 1, max_size=len(bounds) - 1)
    )
    tenders = [
        OriginalTender(
            tender_id=f"t{i}",
            type=kind,
            amount=from_minor(hi - lo, currency),
            payment_token=f"tok_{i}" if kind == "card" else None,
        )
        for i, (lo, hi, kind) in enumerate(zip(bounds, bounds[1:], kinds, strict=False))
    ]
    return currency, lines, order_discount, tenders


def fits_exponent(amount: Decimal, currency: str) -> bool:
    return amount == amount.quantize(Decimal(1).scaleb(-currency_exponent(currency)))


@settings(max_examples=300, deadline=None)
@given(sales(), st.data())
def test_any_sequence_of_partial_returns_is_cent_exact(sale, data) -> None:
    currency, lines, order_discount, tenders = sale
    priced = price_sale(
        currency,
        lines=lines,
        order_discount=order_discount,
        shipping_amount=ZERO,
        shipping_tax=ZERO,
        tenders=[TenderInput(t.tender_id, t.type, t.amount) for t in tenders],
    )
    assert sum((ln.order_discount for ln in priced.lines), ZERO) == order_discount
    returned: dict[str, int] = {}
    drawn: dict[str, Decimal] = {}
    got_back = {ln.line_id: [ZERO, ZERO] for ln in priced.lines}
    total_back = ZERO
    while any(returned.get(ln.line_id, 0) < ln.quantity for ln in priced.lines):
        state = SaleState(
            sale_id="s",
            currency=currency,
            occurred_at=NOW,
            lines=priced.lines,
            tenders=tuple(tenders),
            shipping_amount=ZERO,
            shipping_tax=ZERO,
            returned=dict(returned),
            refunded_by_tender=dict(drawn),
            shipping_refunded=False,
        )
        open_lines = [ln for ln in priced.lines if returned.get(ln.line_id, 0) < ln.quantity]
        chosen = data.draw(st.lists(st.sampled_from(open_lines), min_size=1, unique=True))
        asked = [
            RequestedLine(
                ln.line_id,
                data.draw(st.integers(1, ln.quantity - returned.get(ln.line_id, 0))),
            )
            for ln in chosen
        ]
        quote = quote_refund(
            state,
            asked,
            now=NOW,
            window_days=30,
            refund_to=data.draw(st.sampled_from(["original", "store_credit"])),
            tender_order=ORDER,
            refund_shipping=False,
        )
        assert quote.total == quote.subtotal - quote.discount + quote.tax
        assert sum((t.amount for t in quote.tenders), ZERO) == quote.total
        for amount in (
            quote.total,
            quote.subtotal,
            quote.discount,
            quote.tax,
            *(t.amount for t in quote.tenders),
        ):
            assert amount >= 0
            assert fits_exponent(amount, currency)
        for q in quote.lines:
            returned[q.line_id] = returned.get(q.line_id, 0) + q.quantity
            got_back[q.line_id][0] += q.amount
            got_back[q.line_id][1] += q.tax
            assert q.amount >= 0
            assert q.tax >= 0
        for tender in quote.tenders:
            for tid, amt in tender.sources:
                drawn[tid] = drawn.get(tid, ZERO) + amt
        by_id = {t.tender_id: t for t in tenders}
        for tid, amt in drawn.items():
            assert amt <= by_id[tid].amount, "a tender got back more than it paid"
        total_back += quote.total
    for ln in priced.lines:
        assert got_back[ln.line_id] == [ln.paid, ln.tax], "full return must equal what was paid"
    assert total_back == priced.total
    for t in tenders:
        assert drawn.get(t.tender_id, ZERO) == t.amount
