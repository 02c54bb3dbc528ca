"""Request models of the LAN API; `/openapi.json` is generated from them and from the
views in `edge.domain.views`, which are the very objects the handlers serialise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.api.fields import (
    MAX_MINOR_UNITS,
    CurrencyStr,
    CustomerRef,
    Flag,
    FreeText,
    Gtin,
    Identifier,
    MoneyStr,
    Quantity,
    Sku,
    TenderText,
)
from edge.domain.money import MoneyError, currency_exponent, fmt, from_minor, parse_amount, to_minor
from edge.domain.sale import LineInput, PricedSale, TenderInput, price_sale
from edge.domain.views import Channel, RefundKind, RefundTo, TenderType
from edge.errors import ApiError


def _absent(value: object) -> bool:
    return value is None


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


# A sale may be recorded a little ahead of the gateway's clock (a register's clock runs
# fast), never further: a date far ahead would hold a return window open for ever.
MAX_CLOCK_AHEAD = timedelta(days=1)


def _too_large(currency: str) -> str:
    return f"too large: at most {fmt(from_minor(MAX_MINOR_UNITS, currency), currency)}"


def _check_amounts(currency: str, amounts: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """(field, message) for each amount that does not fit the currency's exponent or bound."""
    problems = []
    for field, value in amounts:
        if value is None:
            continue
        try:
            amount = parse_amount(value, currency)
        except MoneyError as exc:
            problems.append((field, str(exc)))
            continue
        if to_minor(amount, currency) > MAX_MINOR_UNITS:
            problems.append((field, _too_large(currency)))
    return problems


def _line_totals(currency: str, lines: list[SaleLineIn]) -> list[tuple[str, str]]:
    """A line's quantity times its unit price must fit the bound as well."""
    problems = []
    for i, line in enumerate(lines):
        try:
            price = parse_amount(line.unit_price, currency)
        except MoneyError:
            continue  # already reported for the unit price
        if to_minor(price, currency) <= MAX_MINOR_UNITS < to_minor(price * line.quantity, currency):
            problems.append(
                (f"lines[{i}].quantity", "quantity * unit_price is " + _too_large(currency))
            )
    return problems


def _occurred_at_problems(at: datetime) -> list[tuple[str, str]]:
    if at.tzinfo is None:
        return [("occurred_at", "must carry a UTC offset (RFC 3339)")]
    try:
        utc = at.astimezone(UTC)
    except OverflowError:
        return [("occurred_at", "is out of range")]
    if utc > datetime.now(UTC) + MAX_CLOCK_AHEAD:
        return [("occurred_at", "is more than a day ahead of the gateway's clock")]
    return []


class AmountProblems(ApiError, ValueError):
    """Several amount fields at fault; the API reports each with its own path. A ValueError
    too, since pydantic turns only that into a validation error of the model."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


def _currency_ok(currency: str) -> None:
    try:
        currency_exponent(currency)
    except MoneyError as exc:
        raise AmountProblems([("currency", str(exc))]) from None


# ---- sales -------------------------------------------------------------------------


class SaleLineIn(_In):
    line_id: Identifier
    sku: Sku
    gtin: Gtin | None = None
    description: FreeText = ""
    category: FreeText | None = None
    quantity: Quantity
    unit_price: MoneyStr
    discount: MoneyStr = "0"
    tax: MoneyStr = "0"
    final_sale: Flag = False


class ShippingIn(_In):
    amount: MoneyStr = "0"
    tax: MoneyStr = "0"


class TenderIn(_In):
    tender_id: TenderText
    type: TenderType
    amount: MoneyStr
    payment_token: TenderText | None = None
    auth_code: TenderText | None = None
    card_brand: TenderText | None = None
    last4: str | None = Field(None, pattern=r"^[0-9]{4}$")

    @model_validator(mode="after")
    def _card_needs_token(self) -> Self:
        if self.type == "card" and not self.payment_token:
            msg = "a card tender needs the processor's payment_token"
            raise ValueError(msg)
        return self


class SaleIn(_In):
    sale_id: Identifier
    channel: Channel = "store"
    register_id: Identifier | None = None
    occurred_at: datetime
    currency: CurrencyStr
    lines: list[SaleLineIn] = Field(min_length=1, max_length=500)
    order_discount: MoneyStr = "0"
    shipping: ShippingIn = Field(default_factory=ShippingIn)
    tenders: list[TenderIn] = Field(min_length=1, max_length=20)
    # Left out of the dump when absent, so a sale without it keeps the fingerprint it had
    # before the field existed (fingerprints are stored: a retry must still match).
    customer_ref: CustomerRef | None = Field(None, exclude_if=_absent)

    @model_validator(mode="after")
    def _amounts_fit_currency(self) -> Self:
        _currency_ok(self.currency)
        problems = _occurred_at_problems(self.occurred_at)
        amounts: list[tuple[str, str | None]] = [
            ("order_discount", self.order_discount),
            ("shipping.amount", self.shipping.amount),
            ("shipping.tax", self.shipping.tax),
        ]
        for i, line in enumerate(self.lines):
            amounts += [
                (f"lines[{i}].unit_price", line.unit_price),
                (f"lines[{i}].discount", line.discount),
                (f"lines[{i}].tax", line.tax),
            ]
        amounts += [(f"tenders[{i}].amount", t.amount) for i, t in enumerate(self.tenders)]
        problems += _check_amounts(self.currency, amounts) + _line_totals(self.currency, self.lines)
        if problems:
            raise AmountProblems(problems)
        return self

    def priced(self) -> PricedSale:
        """The sale priced by the domain rules (allocation, paid amounts, tender check)."""
        return price_sale(
            self.currency,
            lines=[
                LineInput(
                    line_id=line.line_id,
                    quantity=line.quantity,
                    unit_price=Decimal(line.unit_price),
                    discount=Decimal(line.discount),
                    tax=Decimal(line.tax),
                    final_sale=line.final_sale,
                )
                for line in self.lines
            ],
            order_discount=Decimal(self.order_discount),
            shipping_amount=Decimal(self.shipping.amount),
            shipping_tax=Decimal(self.shipping.tax),
            tenders=[TenderInput(t.tender_id, t.type, Decimal(t.amount)) for t in self.tenders],
        )


# ---- refunds -----------------------------------------------------------------------


class RefundLineIn(_In):
    line_id: Identifier
    quantity: Quantity
    reason: FreeText | None = None
    restock: Flag = True


class ApprovalIn(_In):
    manager_id: Identifier | None = None
    pin: str | None = Field(None, pattern=r"^[0-9]{4,12}$")
    grant: str | None = Field(None, min_length=8, max_length=128)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if self.grant is None and (self.manager_id is None or self.pin is None):
            msg = "give either a badge grant, or a manager_id with a pin"
            raise ValueError(msg)
        return self


class RefundIn(_In):
    sale_id: Identifier | None = None
    kind: RefundKind = "receipt"
    lines: list[RefundLineIn] = Field(default_factory=list, max_length=500)
    refund_to: RefundTo | None = None
    approval: ApprovalIn | None = None
    note: FreeText | None = None
    reason: FreeText | None = None
    amount: MoneyStr | None = None
    currency: CurrencyStr | None = None
    register_id: Identifier | None = None

    @model_validator(mode="after")
    def _shape_by_kind(self) -> Self:
        problems = self._receipt_problems() if self.kind == "receipt" else self._free_problems()
        if problems:
            raise AmountProblems(problems)
        return self

    def _receipt_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.sale_id is None:
            problems.append(("sale_id", "a receipt refund needs the sale_id"))
        if not self.lines:
            problems.append(("lines", "a receipt refund needs at least one line"))
        if self.refund_to == "cash":
            problems.append(("refund_to", "receipt refunds go to 'original' or 'store_credit'"))
        if self.amount is not None:
            problems.append(("amount", "a receipt refund is priced from the sale's lines"))
        return problems

    def _free_problems(self) -> list[tuple[str, str]]:
        """No-receipt and goodwill refunds: an amount, never lines or the original tender."""
        kind = self.kind
        problems: list[tuple[str, str]] = []
        if self.sale_id is not None:
            problems.append(("sale_id", f"a {kind} refund has sale_id null"))
        if self.lines:
            problems.append(("lines", f"a {kind} refund has no lines"))
        if self.refund_to == "original":
            problems.append(("refund_to", f"a {kind} refund is paid as store_credit or cash"))
        problems += [
            (name, f"a {kind} refund needs {name}")
            for name in ("amount", "currency", "reason")
            if getattr(self, name) in (None, "")
        ]
        if self.currency is not None and self.amount is not None:
            _currency_ok(self.currency)
            problems += _check_amounts(self.currency, [("amount", self.amount)])
        return problems


# ---- look-up -----------------------------------------------------------------------


class LookupIn(_In):
    code: str = Field(min_length=1, max_length=512)


# ---- auth and problems ---------------------------------------------------------------


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details; `type` ends in one of the contract's stable slugs."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None
    request_id: str | None = Field(
        None,
        description="the request's id, also in the X-Request-Id response header and on every"
        " line the gateway logged for the request",
    )
