"""Pricing a recorded sale: order-discount allocation, paid amounts, total, tender check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from edge.domain.errors import InvalidRequest, TenderMismatch
from edge.domain.money import ZERO, even_share_slice, fmt, split_by_weights


@dataclass(frozen=True)
class LineInput:
    line_id: str
    quantity: int
    unit_price: Decimal
    discount: Decimal
    tax: Decimal
    final_sale: bool = False


@dataclass(frozen=True)
class TenderInput:
    tender_id: str
    type: str
    amount: Decimal


@dataclass(frozen=True)
class PricedLine:
    line_id: str
    quantity: int
    unit_price: Decimal
    discount: Decimal
    order_discount: Decimal
    tax: Decimal
    paid: Decimal
    final_sale: bool

    @property
    def net(self) -> Decimal:
        return self.quantity * self.unit_price - self.discount

    def units_paid(self, start: int, count: int, currency: str) -> Decimal:
        """What units `start`..`start+count-1` cost after discounts (largest remainder split)."""
        return even_share_slice(self.paid, self.quantity, start, count, currency)

    def units_tax(self, start: int, count: int, currency: str) -> Decimal:
        return even_share_slice(self.tax, self.quantity, start, count, currency)


@dataclass(frozen=True)
class PricedSale:
    currency: str
    lines: tuple[PricedLine, ...]
    order_discount: Decimal
    shipping_amount: Decimal
    shipping_tax: Decimal
    total: Decimal
    tenders: tuple[TenderInput, ...] = field(default=())


def price_sale(
    currency: str,
    *,
    lines: Sequence[LineInput],
    order_discount: Decimal,
    shipping_amount: Decimal,
    shipping_tax: Decimal,
    tenders: Sequence[TenderInput],
) -> PricedSale:
    """Allocate the order discount over lines by net amount, to the cent, and check tenders."""
    if not lines:
        raise InvalidRequest("a sale needs at least one line", "lines")
    seen: set[str] = set()
    for i, line in enumerate(lines):
        if line.line_id in seen:
            raise InvalidRequest(f"line_id {line.line_id!r} appears twice", f"lines[{i}].line_id")
        seen.add(line.line_id)
        if line.discount > line.quantity * line.unit_price:
            raise InvalidRequest("discount exceeds quantity * unit_price", f"lines[{i}].discount")
    tender_ids: set[str] = set()
    for i, tender in enumerate(tenders):
        if tender.tender_id in tender_ids:
            raise InvalidRequest(
                f"tender_id {tender.tender_id!r} appears twice", f"tenders[{i}].tender_id"
            )
        tender_ids.add(tender.tender_id)
    nets = [line.quantity * line.unit_price - line.discount for line in lines]
    net_total = sum(nets, ZERO)
    if order_discount > net_total:
        raise InvalidRequest("order_discount exceeds the lines' net amount", "order_discount")
    allocation = split_by_weights(order_discount, nets, currency)
    priced = tuple(
        PricedLine(
            line_id=line.line_id,
            quantity=line.quantity,
            unit_price=line.unit_price,
            discount=line.discount,
            order_discount=alloc,
            tax=line.tax,
            paid=net - alloc,
            final_sale=line.final_sale,
        )
        for line, net, alloc in zip(lines, nets, allocation, strict=True)
    )
    total = (
        net_total
        - order_discount
        + sum((line.tax for line in lines), ZERO)
        + shipping_amount
        + shipping_tax
    )
    tendered = sum((t.amount for t in tenders), ZERO)
    if tendered != total:
        raise TenderMismatch(
            f"tenders add up to {fmt(tendered, currency)} but the sale total is "
            f"{fmt(total, currency)}",
            "tenders",
        )
    return PricedSale(
        currency=currency,
        lines=priced,
        order_discount=order_discount,
        shipping_amount=shipping_amount,
        shipping_tax=shipping_tax,
        total=total,
        tenders=tuple(tenders),
    )


def window_ends(occurred_at: datetime, window_days: int) -> datetime:
    """When the return window of a sale made at `occurred_at` closes."""
    try:
        return occurred_at + timedelta(days=window_days)
    except OverflowError:  # a sale dated at the end of time, recorded before that was refused
        return datetime.max.replace(tzinfo=UTC)


def window_open(occurred_at: datetime, now: datetime, window_days: int) -> bool:
    return now <= window_ends(occurred_at, window_days)
