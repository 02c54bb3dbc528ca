"""Typed views of what the ledger holds: a sale, a refund, a return look-up.

One shape for every consumer: the ledger builds these from its own rows, the LAN API
serialises them as its responses and documents the same classes in `/openapi.json`, the
outbox carries them as event data and the bus as `refund.updated`. So what a register
reads, what HQ receives and what the documentation promises cannot drift apart.

They are frozen dataclasses, not pydantic models: the ledger builds one per refund from
rows it validated on the way in, and a dataclass costs a fraction of the CPU of either
validating those rows again or pydantic's `model_construct` (the writer's CPU per refund
is a budget). pydantic reads the same classes through `TypeAdapter` to serialise them
(`dump`, `dump_json`), to generate their JSON Schema, and to read a stored response back
(`load_json`, which validates it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter, with_config

T = TypeVar("T")

Channel = Literal["store", "online"]
TenderType = Literal["card", "cash", "gift_card", "store_credit"]
# A gift card or store credit comes back as new store credit, never as a gift card.
RefundTenderType = Literal["card", "cash", "store_credit"]
RefundKind = Literal["receipt", "no_receipt", "goodwill"]
RefundStatus = Literal["pending", "settled", "declined"]
RefundTo = Literal["original", "store_credit", "cash"]
Ineligibility = Literal["return-window-expired", "final-sale", "nothing-left-to-return"]

Money = Annotated[
    str,
    Field(
        pattern=r"^[0-9]+(\.[0-9]+)?$",
        description="Decimal string at the currency's ISO 4217 exponent",
        examples=["19.99"],
    ),
]
Timestamp = Annotated[
    str,
    Field(
        json_schema_extra={"format": "date-time"},
        description="RFC 3339 UTC",
        examples=["2026-11-22T10:15:00.000Z"],
    ),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD"])]


def _absent(value: object) -> bool:
    return value is None


# A key left out of the JSON when it does not apply (rather than sent as null).
OmittedIfNone = Annotated[str | None, Field(exclude_if=_absent)]


# `extra="forbid"` puts `additionalProperties: false` in each view's schema, so a field that
# a handler sends but the view does not declare fails the response validation.
strict = with_config(ConfigDict(extra="forbid"))


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def adapter(cls: type[T]) -> TypeAdapter[T]:
    """pydantic's reading of a view class, built once per class."""
    found = _ADAPTERS.get(cls)
    if found is None:
        found = _ADAPTERS[cls] = TypeAdapter(cls)
    return found


def dump(value: object) -> dict[str, Any]:
    """A view as JSON-ready Python data (outbox event data)."""
    data: dict[str, Any] = adapter(type(value)).dump_python(value, mode="json")
    return data


def dump_json(value: object) -> str:
    """A view as JSON text (HTTP bodies, stored idempotent responses)."""
    return adapter(type(value)).dump_json(value).decode()


def load_json(cls: type[T], text: str | bytes) -> T:
    """A view read back from JSON that this gateway wrote, checked against the view."""
    return adapter(cls).validate_json(text)


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class Shipping:
    amount: Money
    tax: Money


# ---- sales -------------------------------------------------------------------------


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class SaleLine:
    line_id: str
    sku: str
    gtin: str | None
    description: str
    category: str | None
    quantity: int
    unit_price: Money
    discount: Money
    order_discount: Annotated[Money, Field(description="this line's share of the order discount")]
    tax: Money
    paid: Annotated[Money, Field(description="quantity * unit_price - discount - order_discount")]
    final_sale: bool
    returned_quantity: int
    returnable_quantity: int
    refunded_amount: Annotated[
        Money, Field(description="given back for this line so far, tax included")
    ]


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class SaleTender:
    tender_id: str
    type: TenderType
    amount: Money
    payment_token: str | None
    auth_code: str | None
    card_brand: str | None
    last4: str | None
    refunded_amount: Money


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class SaleView:
    """A recorded sale, with what was returned so far per line and per tender."""

    sale_id: str
    channel: Channel
    register_id: str | None
    occurred_at: Timestamp
    currency: Currency
    lines: list[SaleLine]
    order_discount: Money
    shipping: Shipping
    tenders: list[SaleTender]
    total: Money
    recorded_at: Timestamp
    return_ids: list[str]
    customer_ref: Annotated[
        OmittedIfNone, Field(description="opaque pseudonymous customer id, when one was sent")
    ] = None


# ---- refunds -----------------------------------------------------------------------


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class RefundLine:
    line_id: str
    quantity: int
    amount: Money
    tax: Money
    reason: str | None
    restock: bool


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class RefundTender:
    """Where a refund goes; keys that do not apply to the tender type are left out."""

    type: RefundTenderType
    amount: Money
    tender_id: OmittedIfNone = None
    payment_token: OmittedIfNone = None
    auth_code: OmittedIfNone = None
    store_credit_code: OmittedIfNone = None


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class RefundView:
    """A refund as the register, HQ and the event stream see it."""

    return_id: str
    sale_id: str | None
    kind: RefundKind
    status: RefundStatus
    offline: bool
    currency: Currency
    subtotal: Money
    discount: Money
    tax: Money
    total: Annotated[
        Money, Field(description="subtotal - discount + tax; the tenders add up to it")
    ]
    shipping: Shipping
    lines: list[RefundLine]
    tenders: list[RefundTender]
    refund_to: RefundTo
    reason: str | None
    note: str | None
    approved_by: str | None
    created_at: Timestamp
    updated_at: Timestamp
    processor_ref: str | None
    erp_ref: str | None
    decline_reason: str | None


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class RefundRequested(RefundView):
    """`refund.requested` event data: the refund, and who asked for it from where."""

    register_id: str | None
    client_id: str
    sale_channel: Channel | None


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryItem:
    line_id: str
    sku: str
    gtin: str | None
    quantity: int


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryReturned:
    """`inventory.returned` event data: the units a refund put back on the shelf."""

    return_id: str
    sale_id: str
    items: list[InventoryItem]


# ---- look-up -----------------------------------------------------------------------


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class EligibleLine:
    line_id: str
    returnable_quantity: int
    final_sale: bool


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class Eligibility:
    eligible: bool
    reasons: list[Ineligibility]
    window_ends_at: Timestamp
    lines: list[EligibleLine]


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class LookupResult:
    """What a scanned or typed code names; a no-receipt or goodwill Return ID resolves to
    its refund alone (no sale, no eligibility)."""

    matched: Literal["sale_id", "return_id"]
    source: Literal["local", "hq"]
    sale: SaleView | None
    eligibility: Eligibility | None
    refund: RefundView | None
