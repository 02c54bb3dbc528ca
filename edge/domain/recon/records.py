"""What reconciliation reads and what it finds, as plain frozen dataclasses.

The plumbing fills `StoreRefund` from the ledger and `HqEntry` from HQ's digest
(`entry_from_wire`); matching and diagnosis read nothing else, so they stay pure and a test
can state a whole scenario in a few lines. A `Finding` maps 1:1 onto the contract's
`Mismatch` (see `wire.py`); only `mismatch_id`, `detected_at` and `age_s` are the
plumbing's to add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, TypedDict

from edge.contract.recon import (
    DiagnosisClass,
    DigestEntry,
    DigestSource,
    DigestStatus,
    MismatchKind,
    Pattern,
    RefundKind,
)
from edge.domain.money import ZERO

Channel = Literal["store", "online"]
# A (type, amount) pair: "card", "cash", "store_credit", "gift_card", ...
Tender = tuple[str, Decimal]


@dataclass(frozen=True, slots=True)
class SoldLine:
    """One line of the original sale, as priced then (`edge.domain.sale.PricedLine`): what
    recomputing a refund under another rounding or discount rule starts from."""

    line_id: str
    quantity: int
    unit_price: Decimal
    discount: Decimal  # the line's own discount, whole line
    order_discount: Decimal  # the line's share of the order discount, whole line
    tax: Decimal  # the line's tax, whole line

    @property
    def paid(self) -> Decimal:
        return self.quantity * self.unit_price - self.discount - self.order_discount


@dataclass(frozen=True, slots=True)
class StoreLine:
    """One refunded line: what the gateway gave back, and the sale line it came from."""

    line_id: str
    sku: str | None
    category: str | None
    quantity: int  # units refunded by this refund
    amount: Decimal  # after discounts, before tax
    tax: Decimal
    sold: SoldLine
    returned_before: int = 0  # units of the line refunded before this refund (unit order)


@dataclass(frozen=True, slots=True)
class StoreRefund:
    """One refund as the gateway's ledger holds it (`RefundView` plus its sale's facts)."""

    return_id: str
    sale_id: str | None  # None for no-receipt and goodwill; an online order's id otherwise
    currency: str
    total: Decimal
    tax: Decimal
    tenders: tuple[Tender, ...]
    lines: tuple[StoreLine, ...]
    kind: RefundKind  # the gateway's receipt / no_receipt / goodwill, as HQ spells them
    refund_to: str  # original / store_credit / cash
    hq_status: DigestStatus
    created_at: datetime
    decided_at: datetime | None = None  # when HQ's settlement or decline reached the ledger
    approved_by: str | None = None
    offline: bool = False
    source: str = "register"  # register / handheld / ...: where the refund was keyed in
    customer_ref: str | None = None
    channel: Channel = "store"  # the sale's channel; "online" makes sale_id an order id
    order_id: str | None = None
    shipping_amount: Decimal = ZERO
    shipping_tax: Decimal = ZERO
    sent_at: datetime | None = None  # when the HQ link delivered it (None: not yet / unknown)
    store_credit_codes: tuple[str, ...] = ()  # codes this refund issued
    sale_tender_types: tuple[str, ...] = ()  # how the original sale was paid
    sale_credit_codes: tuple[str, ...] = ()  # store credit codes spent on the original sale
    sale_order_discount: Decimal = ZERO  # the original sale's whole order discount
    sale_lines: tuple[SoldLine, ...] = ()  # every line of the sale (for re-allocation)

    @property
    def reference(self) -> str | None:
        """The sale or order this refund refers to, whichever the gateway holds."""
        return self.order_id or self.sale_id


@dataclass(frozen=True, slots=True)
class HqLine:
    line_id: str
    sku: str | None
    category: str | None
    quantity: int
    amount: Decimal
    tax: Decimal


@dataclass(frozen=True, slots=True)
class HqEntry:
    """One digest entry: a refund HQ or its ERP holds for the store."""

    return_id: str | None
    external_ref: str
    source: DigestSource
    sale_id: str | None
    order_id: str | None
    currency: str
    total: Decimal
    tax: Decimal
    tenders: tuple[Tender, ...]
    lines: tuple[HqLine, ...]
    status: DigestStatus
    created_at: datetime
    kind: RefundKind
    settled_at: datetime | None = None
    erp_posted_at: datetime | None = None
    edited_by: str | None = None
    approved_by: str | None = None
    processor_ref: str | None = None
    erp_ref: str | None = None

    @property
    def reference(self) -> str | None:
        return self.order_id or self.sale_id


def entry_from_wire(entry: DigestEntry) -> HqEntry:
    """A digest entry as reconciliation reads it (the wire model already holds Decimals)."""
    return HqEntry(
        return_id=entry.return_id,
        external_ref=entry.external_ref,
        source=entry.source,
        sale_id=entry.sale_id,
        order_id=entry.order_id,
        currency=entry.currency,
        total=entry.total,
        tax=entry.tax,
        tenders=tuple((t.type, t.amount) for t in entry.tenders),
        lines=tuple(
            HqLine(ln.line_id, ln.sku, ln.category, ln.quantity, ln.amount, ln.tax)
            for ln in entry.lines
        ),
        status=entry.status,
        created_at=entry.created_at,
        kind=entry.kind,
        settled_at=entry.settled_at,
        erp_posted_at=entry.erp_posted_at,
        edited_by=entry.edited_by,
        approved_by=entry.approved_by,
        processor_ref=entry.processor_ref,
        erp_ref=entry.erp_ref,
    )


@dataclass(frozen=True, slots=True)
class PriorMismatch:
    """A mismatch found by an earlier run, as the plumbing keeps it: enough to tell whether
    a new one repeats it (same customer, order or refund kind)."""

    key: str
    kind: MismatchKind
    pattern: Pattern | None
    detected_at: datetime
    customer_ref: str | None = None
    sale_id: str | None = None  # or the order id
    refund_kind: RefundKind | None = None
    category: str | None = None
    resolved_at: datetime | None = None


class Answers(TypedDict):
    """The contract's five diagnostic questions: True, False, or None (not enough data)."""

    repeats: bool | None
    manual_touch: bool | None
    concentrated: bool | None
    delayed: bool | None
    reproducible: bool | None


@dataclass(frozen=True, slots=True)
class Diagnosis:
    class_: DiagnosisClass
    pattern: Pattern | None
    answers: Answers
    evidence: list[str]
    fix_sequence: list[str]


UNDIAGNOSED = Diagnosis(
    "undetermined",
    None,
    Answers(repeats=None, manual_touch=None, concentrated=None, delayed=None, reproducible=None),
    [],
    [],
)


@dataclass(frozen=True, slots=True)
class Finding:
    """A mismatch before it is stored. `key` names the mismatch, not the run: the same
    difference found again by a later digest or checkpoint has the same key."""

    kind: MismatchKind
    key: str
    return_id: str | None
    external_ref: str | None
    sale_id: str | None  # the sale or order id
    currency: str
    store_amount: Decimal | None
    hq_amount: Decimal | None
    delta: Decimal | None  # hq - store, when both are in the same currency
    occurred_at: datetime  # when the refund was made (for the mismatch's age)
    diagnosis: Diagnosis = field(default=UNDIAGNOSED)
    store: StoreRefund | None = field(default=None, repr=False, compare=False)
    entry: HqEntry | None = field(default=None, repr=False, compare=False)
    detail: str = ""  # what differs, in words: "tax", "tender card", "line 2 units"
