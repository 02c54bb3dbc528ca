"""Quoting a refund against a recorded sale: eligibility, cent-exact amounts, tenders.

A line's paid amount and tax are split over its units (largest remainder) and units are
given back in a fixed order, so any sequence of partial returns adds up to exactly what
was paid for the line, never a cent more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from edge.domain.errors import (
    FinalSale,
    InvalidRequest,
    QuantityExceedsReturnable,
    ReturnWindowExpired,
)
from edge.domain.money import ZERO
from edge.domain.sale import PricedLine, window_ends, window_open
from edge.domain.tenders import OriginalTender, TenderRefund, allocate_refund
from edge.domain.views import EligibleLine, Ineligibility


@dataclass(frozen=True)
class SaleState:
    """A recorded sale and what has been given back so far."""

    sale_id: str
    currency: str
    occurred_at: datetime
    lines: tuple[PricedLine, ...]
    tenders: tuple[OriginalTender, ...]
    shipping_amount: Decimal
    shipping_tax: Decimal
    returned: Mapping[str, int]
    refunded_by_tender: Mapping[str, Decimal]
    shipping_refunded: bool

    def returnable(self, line: PricedLine) -> int:
        return 0 if line.final_sale else line.quantity - self.returned.get(line.line_id, 0)


@dataclass(frozen=True)
class RequestedLine:
    line_id: str
    quantity: int


@dataclass(frozen=True)
class QuotedLine:
    line_id: str
    quantity: int
    gross: Decimal
    amount: Decimal
    tax: Decimal


@dataclass(frozen=True)
class RefundQuote:
    currency: str
    lines: tuple[QuotedLine, ...]
    shipping_amount: Decimal
    shipping_tax: Decimal
    tenders: tuple[TenderRefund, ...]
    unlinked: Decimal = ZERO  # a no-receipt or goodwill amount, tied to no sale line
    # Worked out once, when the quote is made: the rules, the rows and the view all read them.
    subtotal: Decimal = field(init=False)
    discount: Decimal = field(init=False)
    tax: Decimal = field(init=False)
    total: Decimal = field(init=False)

    def __post_init__(self) -> None:
        gross = sum((line.gross for line in self.lines), ZERO)
        subtotal = gross + self.shipping_amount + self.unlinked
        discount = gross - sum((line.amount for line in self.lines), ZERO)
        tax = sum((line.tax for line in self.lines), ZERO) + self.shipping_tax
        for name, value in (
            ("subtotal", subtotal),
            ("discount", discount),
            ("tax", tax),
            ("total", subtotal - discount + tax),
        ):
            object.__setattr__(self, name, value)


def quote_refund(
    sale: SaleState,
    requested: Sequence[RequestedLine],
    *,
    now: datetime,
    window_days: int,
    refund_to: str,
    tender_order: Sequence[str],
    refund_shipping: bool,
) -> RefundQuote:
    """Check eligibility and price the requested units; raises a PolicyViolation if refused."""
    if not requested:
        raise InvalidRequest("a receipt refund needs at least one line", "lines")
    if not window_open(sale.occurred_at, now, window_days):
        raise ReturnWindowExpired(
            f"sale {sale.sale_id} is past the {window_days}-day return window"
        )
    by_id = {line.line_id: line for line in sale.lines}
    seen: set[str] = set()
    quoted: list[QuotedLine] = []
    for i, req in enumerate(requested):
        line = by_id.get(req.line_id)
        if line is None:
            raise InvalidRequest(
                f"sale {sale.sale_id} has no line {req.line_id!r}", f"lines[{i}].line_id"
            )
        if req.line_id in seen:
            raise InvalidRequest(f"line {req.line_id!r} is listed twice", f"lines[{i}].line_id")
        seen.add(req.line_id)
        if line.final_sale:
            raise FinalSale(f"line {line.line_id} was sold as final sale", f"lines[{i}].line_id")
        already = sale.returned.get(line.line_id, 0)
        left = line.quantity - already
        if req.quantity > left:
            raise QuantityExceedsReturnable(
                f"line {line.line_id}: {req.quantity} asked, {left} returnable",
                f"lines[{i}].quantity",
            )
        quoted.append(
            QuotedLine(
                line_id=line.line_id,
                quantity=req.quantity,
                gross=req.quantity * line.unit_price,
                amount=line.units_paid(already, req.quantity, sale.currency),
                tax=line.units_tax(already, req.quantity, sale.currency),
            )
        )
    ship_amount = ship_tax = ZERO
    if refund_shipping and not sale.shipping_refunded and _takes_last_units(sale, quoted):
        ship_amount, ship_tax = sale.shipping_amount, sale.shipping_tax
    quote = RefundQuote(sale.currency, tuple(quoted), ship_amount, ship_tax, ())
    tenders = allocate_refund(
        quote.total, sale.tenders, sale.refunded_by_tender, tender_order, refund_to
    )
    return RefundQuote(sale.currency, tuple(quoted), ship_amount, ship_tax, tuple(tenders))


@dataclass(frozen=True)
class ReturnEligibility:
    """Why nothing on a sale can be returned (no reasons: something can), and until when."""

    reasons: tuple[Ineligibility, ...]
    window_ends_at: datetime

    @property
    def eligible(self) -> bool:
        return not self.reasons


def return_eligibility(
    occurred_at: datetime, lines: Sequence[EligibleLine], *, now: datetime, window_days: int
) -> ReturnEligibility:
    """Whether anything on a sale can still be returned, and why not: the same window and
    final-sale rules `quote_refund` enforces, told before a refund is asked for."""
    reasons: list[Ineligibility] = []
    if not window_open(occurred_at, now, window_days):
        reasons.append("return-window-expired")
    if all(line.final_sale for line in lines):
        reasons.append("final-sale")
    elif not any(line.returnable_quantity > 0 for line in lines):
        reasons.append("nothing-left-to-return")
    return ReturnEligibility(tuple(reasons), window_ends(occurred_at, window_days))


def _takes_last_units(sale: SaleState, quoted: Sequence[QuotedLine]) -> bool:
    asked = {q.line_id: q.quantity for q in quoted}
    return all(
        sale.returnable(line) == asked.get(line.line_id, 0)
        for line in sale.lines
        if not line.final_sale
    )
