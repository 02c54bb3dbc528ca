"""Recompute a refund under the other plausible rules, to name the one HQ used.

The gateway prices a refunded unit the way `edge.domain.refund.quote_refund` does: a sale
line's paid amount (after its own discount and its share of the order discount, which
`price_sale` allocates by net amount) and its tax are each split over the line's units by
largest remainder, and units are given back in a fixed order, so partial returns add up to
the line to the cent. An ERP that imports the refund often prices it again by its own rule.
The alternatives below are those seen in practice:

- rounding (`rounding-drift`): a unit's amount and tax rounded on each unit (half up, or
  truncated), only the tax rounded per unit, one rounding per line (pro rata), or the tax
  rounded once on the refund's total;
- promotions (`promo-mismatch`): the order discount ignored, every discount ignored (the
  full price, with the gateway's tax or with tax at the line's rate on the full price), or
  the order discount allocated by quantity or by gross price instead of by net amount.

`explain` names an alternative only when it reproduces HQ's total *and* tax to the minor
unit and differs from the gateway's figure: a difference no rule reproduces is not drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Literal

from edge.domain.money import ZERO, even_share_slice, fmt, quantum, split_by_weights
from edge.domain.recon.records import SoldLine, StoreLine, StoreRefund

Family = Literal["rounding", "promo"]
Figure = tuple[Decimal, Decimal]  # (total, tax)
# One line's refunded (amount, tax), or None when the rule does not apply to this refund.
LineRule = Callable[[StoreRefund, StoreLine], tuple[Decimal, Decimal] | None]


def _q(value: Decimal, currency: str, rounding: str = ROUND_HALF_UP) -> Decimal:
    return value.quantize(quantum(currency), rounding=rounding)


def _gateway(r: StoreRefund, ln: StoreLine) -> tuple[Decimal, Decimal]:
    s, c = ln.sold, r.currency
    return (
        even_share_slice(s.paid, s.quantity, ln.returned_before, ln.quantity, c),
        even_share_slice(s.tax, s.quantity, ln.returned_before, ln.quantity, c),
    )


def _per_unit(rounding: str) -> LineRule:
    def rule(r: StoreRefund, ln: StoreLine) -> tuple[Decimal, Decimal]:
        s = ln.sold
        unit = _q(s.paid / s.quantity, r.currency, rounding)
        unit_tax = _q(s.tax / s.quantity, r.currency, rounding)
        return ln.quantity * unit, ln.quantity * unit_tax

    return rule


def _tax_per_unit(r: StoreRefund, ln: StoreLine) -> tuple[Decimal, Decimal]:
    amount, _ = _gateway(r, ln)
    return amount, ln.quantity * _q(ln.sold.tax / ln.sold.quantity, r.currency)


def _per_line(r: StoreRefund, ln: StoreLine) -> tuple[Decimal, Decimal]:
    s, c = ln.sold, r.currency
    return _q(s.paid * ln.quantity / s.quantity, c), _q(s.tax * ln.quantity / s.quantity, c)


def _without(r: StoreRefund, ln: StoreLine, paid: Decimal) -> tuple[Decimal, Decimal]:
    """The gateway's unit split of another paid amount, with the gateway's tax."""
    s, c = ln.sold, r.currency
    _, tax = _gateway(r, ln)
    return even_share_slice(paid, s.quantity, ln.returned_before, ln.quantity, c), tax


def _no_order_discount(r: StoreRefund, ln: StoreLine) -> tuple[Decimal, Decimal] | None:
    s = ln.sold
    return _without(r, ln, s.quantity * s.unit_price - s.discount) if s.order_discount else None


def _full_price(r: StoreRefund, ln: StoreLine) -> tuple[Decimal, Decimal]:
    _, tax = _gateway(r, ln)
    return ln.quantity * ln.sold.unit_price, tax


def _full_price_taxed(r: StoreRefund, ln: StoreLine) -> tuple[Decimal, Decimal] | None:
    s = ln.sold
    if s.paid <= 0:
        return None
    gross = ln.quantity * s.unit_price
    return gross, _q(s.tax / s.paid * gross, r.currency)


def _reallocated(weigh: Callable[[SoldLine], Decimal]) -> LineRule:
    def rule(r: StoreRefund, ln: StoreLine) -> tuple[Decimal, Decimal] | None:
        if not r.sale_lines or not r.sale_order_discount:
            return None
        shares = split_by_weights(
            r.sale_order_discount, [weigh(s) for s in r.sale_lines], r.currency
        )
        by_id = {s.line_id: share for s, share in zip(r.sale_lines, shares, strict=True)}
        if ln.line_id not in by_id:
            return None
        s = ln.sold
        return _without(r, ln, s.quantity * s.unit_price - s.discount - by_id[ln.line_id])

    return rule


@dataclass(frozen=True, slots=True)
class Alternative:
    name: str
    family: Family
    says: str  # what the rule does, for the evidence
    line: LineRule | None = None
    # Rounded once over the whole refund instead of per line (tax on the total).
    on_total: bool = False


ALTERNATIVES: tuple[Alternative, ...] = (
    Alternative(
        "per-unit-half-up",
        "rounding",
        "each unit's amount and tax rounded half up",
        _per_unit(ROUND_HALF_UP),
    ),
    Alternative(
        "per-unit-truncated",
        "rounding",
        "each unit's amount and tax truncated",
        _per_unit(ROUND_DOWN),
    ),
    Alternative("tax-per-unit", "rounding", "the line tax rounded on each unit", _tax_per_unit),
    Alternative(
        "per-line-prorated", "rounding", "amount and tax pro rata, rounded once a line", _per_line
    ),
    Alternative(
        "tax-on-total", "rounding", "the tax pro rata, rounded once on the total", on_total=True
    ),
    Alternative(
        "order-discount-ignored", "promo", "the order discount left out", _no_order_discount
    ),
    Alternative("full-price", "promo", "the full unit price, every discount left out", _full_price),
    Alternative(
        "full-price-taxed",
        "promo",
        "the full unit price, taxed at the line's rate",
        _full_price_taxed,
    ),
    Alternative(
        "order-discount-by-quantity",
        "promo",
        "the order discount allocated by quantity, not by net amount",
        _reallocated(lambda s: Decimal(s.quantity)),
    ),
    Alternative(
        "order-discount-by-gross",
        "promo",
        "the order discount allocated by gross price, not by net amount",
        _reallocated(lambda s: s.quantity * s.unit_price),
    ),
)
BY_NAME = {alt.name: alt for alt in ALTERNATIVES}


def _figure(r: StoreRefund, amount: Decimal, tax: Decimal) -> Figure:
    tax += r.shipping_tax
    return amount + r.shipping_amount + tax, tax


def gateway_figure(refund: StoreRefund) -> Figure | None:
    """(total, tax) by the gateway's own rule; None for a refund tied to no sale line."""
    if not refund.lines:
        return None
    parts = [_gateway(refund, ln) for ln in refund.lines]
    return _figure(refund, sum((a for a, _ in parts), ZERO), sum((t for _, t in parts), ZERO))


def recompute(refund: StoreRefund, name: str) -> Figure | None:
    """(total, tax) under the named alternative; None when it does not apply."""
    alt = BY_NAME[name]
    if not refund.lines:
        return None
    if alt.on_total:
        c = refund.currency
        amount = sum((_gateway(refund, ln)[0] for ln in refund.lines), ZERO)
        exact = sum((ln.sold.tax * ln.quantity / ln.sold.quantity for ln in refund.lines), ZERO)
        return _figure(refund, amount, _q(exact, c))
    assert alt.line is not None  # every per-line alternative has its rule
    amount = tax = ZERO
    for ln in refund.lines:
        got = alt.line(refund, ln)
        if got is None:
            return None
        amount, tax = amount + got[0], tax + got[1]
    return _figure(refund, amount, tax)


@dataclass(frozen=True, slots=True)
class Recomputation:
    """What recomputing one refund showed against HQ's figure."""

    gateway: Figure | None
    matches_store: bool  # the gateway's rule gives the ledger's figure back
    alternative: Alternative | None  # the one rule that reproduces HQ's figure
    tried: dict[str, Figure] = field(default_factory=dict)

    @property
    def reproducible(self) -> bool | None:
        """True: a rule reproduces HQ's figure; False: recomputing gives the store's figure
        and none gives HQ's; None: nothing to recompute (no sale lines, or a ledger figure
        the gateway's own rule does not give back)."""
        if self.alternative is not None:
            return True
        return False if self.matches_store else None


def explain(refund: StoreRefund, hq_total: Decimal, hq_tax: Decimal) -> Recomputation:
    """Try each alternative in order (rounding before promotions); the first that
    reproduces HQ's total and tax, and differs from the gateway's figure, is named."""
    gateway = gateway_figure(refund)
    if gateway is None:
        return Recomputation(None, False, None)
    matches = gateway == (refund.total, refund.tax)
    tried: dict[str, Figure] = {}
    for alt in ALTERNATIVES:
        got = recompute(refund, alt.name)
        if got is None:
            continue
        tried[alt.name] = got
        if got == (hq_total, hq_tax) and got != gateway:
            return Recomputation(gateway, matches, alt, tried)
    return Recomputation(gateway, matches, None, tried)


def evidence(refund: StoreRefund, result: Recomputation, hq: Figure) -> str:
    """One line: which rule gives HQ's figure, beside the gateway's."""
    c = refund.currency
    if result.gateway is None:
        return f"refund {refund.return_id} has no sale lines to recompute"
    g_total, g_tax = result.gateway
    ours = f"the gateway's split over units gives {fmt(g_total, c)} (tax {fmt(g_tax, c)})"
    if result.alternative is None:
        return (
            f"no rounding or discount rule reproduces HQ's {fmt(hq[0], c)} (tax "
            f"{fmt(hq[1], c)}) for {refund.return_id}; {ours}"
        )
    return (
        f"HQ's {fmt(hq[0], c)} (tax {fmt(hq[1], c)}) for {refund.return_id} = "
        f"{result.alternative.says} ({result.alternative.name}); {ours}"
    )
