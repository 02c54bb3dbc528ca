"""Refunds: one transaction holds the return, its lines and tenders, its outbox events,
its audit record and its idempotency key, so a refund is there whole or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from edge.contract.envelope import EventType
from edge.contract.timefmt import iso
from edge.domain.errors import (
    ApprovalRequired,
    IdempotencyKeyReused,
    NotFound,
    OfflineLimitExceeded,
)
from edge.domain.ids import new_return_id, new_store_credit_code
from edge.domain.money import ZERO, fmt, from_minor, to_minor
from edge.domain.policy import needs_approval, offline_card_refusal
from edge.domain.refund import RefundQuote, RequestedLine, quote_refund
from edge.domain.tenders import TenderRefund
from edge.domain.views import (
    InventoryItem,
    InventoryReturned,
    RefundKind,
    RefundLine,
    RefundTender,
    RefundTenderType,
    RefundTo,
    RefundView,
    Shipping,
    dump,
    load_json,
)
from edge.ledger.audit import append_audit
from edge.ledger.outbox import Origin, append_events
from edge.ledger.sales import SaleRecord, load_sale_record


@dataclass(frozen=True)
class RefundRules:
    window_days: int
    approval_thresholds: Mapping[str, Decimal]
    tender_order: Sequence[str]
    refund_shipping: bool
    store_credit_prefix: str
    offline_per_refund: Mapping[str, Decimal]
    offline_pending_cap: Mapping[str, Decimal]


@dataclass(frozen=True)
class LineRequest:
    line_id: str
    quantity: int
    reason: str | None
    restock: bool


@dataclass(frozen=True)
class RefundCommand:
    client_id: str
    idempotency_key: str
    fingerprint: str
    kind: RefundKind
    sale_id: str | None
    lines: tuple[LineRequest, ...]
    refund_to: RefundTo
    amount: Decimal | None
    currency: str | None
    reason: str | None
    note: str | None
    register_id: str | None
    approved_by: str | None
    offline: bool


@dataclass(frozen=True)
class RefundOutcome:
    """What the register is answered: the status and the refund, whose JSON (`body`) is made
    once, by the writer, and is both the stored idempotent response and the HTTP body."""

    status: int
    refund: RefundView
    replayed: bool
    last_seq: int | None
    body: bytes


def find_idempotent(
    conn: sqlite3.Connection, client_id: str, key: str, fingerprint: str
) -> RefundOutcome | None:
    """The stored outcome for this key, or None; a different body under it is refused."""
    row = conn.execute(
        "SELECT fingerprint, status, response FROM idempotency_keys"
        " WHERE client_id = ? AND key = ?",
        (client_id, key),
    ).fetchone()
    if row is None:
        return None
    if row["fingerprint"] != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different request; use a new key"
        )
    response = row["response"]
    return RefundOutcome(
        row["status"], load_json(RefundView, response), True, None, response.encode()
    )


def create_refund(
    conn: sqlite3.Connection,
    cmd: RefundCommand,
    rules: RefundRules,
    origin: Origin,
    at: datetime,
) -> RefundOutcome:
    """Decide and write one refund inside the writer's transaction."""
    replay = find_idempotent(conn, cmd.client_id, cmd.idempotency_key, cmd.fingerprint)
    if replay is not None:
        return replay
    quote, sale = _quote(conn, cmd, rules, at)
    if cmd.approved_by is None and needs_approval(
        cmd.kind, quote.currency, quote.total, rules.approval_thresholds
    ):
        raise ApprovalRequired(
            f"a {cmd.kind} refund of {fmt(quote.total, quote.currency)} {quote.currency}"
            " needs a manager approval (PIN or badge)",
            "approval",
        )
    if cmd.offline:
        _check_offline(conn, quote, rules)
    return_id = new_return_id(origin.store_id, at)
    stamp = iso(at)
    codes = _insert(conn, cmd, quote, return_id, rules, stamp)
    view = _written_view(cmd, quote, return_id, codes, stamp)
    data = dump(view)
    # The JSON of `dump` is what pydantic writes for the view (`dump_json`), made once here.
    body = orjson.dumps(data)
    # `refund.requested` data is the view and who asked from where (`RefundRequested`).
    data.update(
        register_id=cmd.register_id,
        client_id=cmd.client_id,
        sale_channel=None if sale is None else sale.channel,
    )
    events: list[tuple[EventType, dict[str, Any]]] = [("refund.requested", data)]
    restocked = [line for line in cmd.lines if line.restock]
    if restocked and sale is not None:
        events.append(("inventory.returned", _inventory_returned(sale, return_id, restocked)))
    staged = append_events(conn, origin, events, at)
    append_audit(
        conn,
        at=at,
        actor=cmd.client_id,
        action="refund.created",
        subject=return_id,
        detail={
            "kind": cmd.kind,
            "sale_id": cmd.sale_id,
            "total": view.total,
            "currency": quote.currency,
            "approved_by": cmd.approved_by,
            "offline": cmd.offline,
            "event_id": staged[0].event_id,
        },
    )
    conn.execute(
        "INSERT INTO idempotency_keys (client_id, key, fingerprint, status, response, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (cmd.client_id, cmd.idempotency_key, cmd.fingerprint, 201, body.decode(), stamp),
    )
    return RefundOutcome(201, view, False, staged[-1].seq, body)


def _quote(
    conn: sqlite3.Connection, cmd: RefundCommand, rules: RefundRules, at: datetime
) -> tuple[RefundQuote, SaleRecord | None]:
    if cmd.kind != "receipt":
        assert cmd.amount is not None
        assert cmd.currency is not None
        # Paid as cash or store credit (the request model refuses `original` for these).
        paid_as: RefundTenderType = "cash" if cmd.refund_to == "cash" else "store_credit"
        tender = TenderRefund(type=paid_as, amount=cmd.amount, sources=())
        return RefundQuote(cmd.currency, (), ZERO, ZERO, (tender,), unlinked=cmd.amount), None
    assert cmd.sale_id is not None
    sale = load_sale_record(conn, cmd.sale_id)
    if sale is None:
        raise NotFound(f"no sale {cmd.sale_id} is recorded here", "sale_id")
    quote = quote_refund(
        sale.state,
        [RequestedLine(line.line_id, line.quantity) for line in cmd.lines],
        now=at,
        window_days=rules.window_days,
        refund_to=cmd.refund_to,
        tender_order=rules.tender_order,
        refund_shipping=rules.refund_shipping,
    )
    return quote, sale


def _check_offline(conn: sqlite3.Connection, quote: RefundQuote, rules: RefundRules) -> None:
    cur = quote.currency
    card = sum((t.amount for t in quote.tenders if t.type == "card"), ZERO)
    if card == 0:
        return
    pending_minor = offline_card_pending(conn, cur)
    refusal = offline_card_refusal(
        card,
        from_minor(pending_minor, cur),
        cur,
        rules.offline_per_refund,
        rules.offline_pending_cap,
    )
    if refusal is not None:
        raise OfflineLimitExceeded(
            f"HQ is unreachable and {refusal}; refund to store credit instead", "refund_to"
        )


def offline_card_pending(conn: sqlite3.Connection, currency: str) -> int:
    """Card refunds made offline that HQ has not decided yet, in minor units.

    A running total (migration 0004 keeps it in the same transaction as every refund and
    every HQ outcome), so this costs one row however long HQ has been away.
    """
    row = conn.execute(
        "SELECT amount FROM offline_card_pending WHERE currency = ?", (currency,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def _insert(
    conn: sqlite3.Connection,
    cmd: RefundCommand,
    quote: RefundQuote,
    return_id: str,
    rules: RefundRules,
    stamp: str,
) -> list[str | None]:
    """Write the refund's rows; returns the store credit code issued for each tender."""
    cur = quote.currency

    def m(amount: Decimal) -> int:
        return to_minor(amount, cur)

    codes: list[str | None] = []
    conn.execute(
        "INSERT INTO returns (return_id, sale_id, kind, status, offline, currency, refund_to,"
        " subtotal, discount, tax, shipping_amount, shipping_tax, total, reason, note,"
        " approved_by, client_id, register_id, created_at, updated_at)"
        " VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            return_id,
            cmd.sale_id,
            cmd.kind,
            int(cmd.offline),
            cur,
            cmd.refund_to,
            m(quote.subtotal),
            m(quote.discount),
            m(quote.tax),
            m(quote.shipping_amount),
            m(quote.shipping_tax),
            m(quote.total),
            cmd.reason,
            cmd.note,
            cmd.approved_by,
            cmd.client_id,
            cmd.register_id,
            stamp,
            stamp,
        ),
    )
    asked = {line.line_id: line for line in cmd.lines}
    conn.executemany(
        "INSERT INTO return_lines (return_id, sale_id, line_id, quantity, gross, amount, tax,"
        " reason, restock) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                return_id,
                cmd.sale_id,
                q.line_id,
                q.quantity,
                m(q.gross),
                m(q.amount),
                m(q.tax),
                asked[q.line_id].reason,
                int(asked[q.line_id].restock),
            )
            for q in quote.lines
        ],
    )
    for no, tender in enumerate(quote.tenders):
        code = None
        if tender.type == "store_credit":
            code = new_store_credit_code(rules.store_credit_prefix)
        codes.append(code)
        if code is not None:
            conn.execute(
                "INSERT INTO store_credits (code, return_id, currency, amount, issued_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (code, return_id, cur, m(tender.amount), stamp),
            )
        conn.execute(
            "INSERT INTO return_tenders (return_id, tender_no, type, amount, source_tender_id,"
            " payment_token, auth_code, store_credit_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                return_id,
                no,
                tender.type,
                m(tender.amount),
                tender.tender_id,
                tender.payment_token,
                tender.auth_code,
                code,
            ),
        )
        conn.executemany(
            "INSERT INTO return_tender_draws (return_id, sale_id, tender_id, amount)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (return_id, tender_id)"
            " DO UPDATE SET amount = amount + excluded.amount",
            [(return_id, cmd.sale_id, tid, m(amt)) for tid, amt in tender.sources],
        )
    return codes


def _written_view(
    cmd: RefundCommand,
    quote: RefundQuote,
    return_id: str,
    codes: list[str | None],
    stamp: str,
) -> RefundView:
    """The refund just written, built from what was written instead of read back: the view
    `refund_view` reads (`tests/core/test_api_schema.py` compares them), for less writer CPU
    per refund."""
    cur = quote.currency

    def s(amount: Decimal) -> str:
        return fmt(amount, cur)

    asked = {line.line_id: line for line in cmd.lines}
    return RefundView(
        return_id=return_id,
        sale_id=cmd.sale_id,
        kind=cmd.kind,
        status="pending",
        offline=cmd.offline,
        currency=cur,
        subtotal=s(quote.subtotal),
        discount=s(quote.discount),
        tax=s(quote.tax),
        total=s(quote.total),
        shipping=Shipping(amount=s(quote.shipping_amount), tax=s(quote.shipping_tax)),
        lines=[
            RefundLine(
                line_id=q.line_id,
                quantity=q.quantity,
                amount=s(q.amount),
                tax=s(q.tax),
                reason=asked[q.line_id].reason,
                restock=asked[q.line_id].restock,
            )
            for q in quote.lines
        ],
        tenders=[
            RefundTender(
                type=t.type,
                amount=s(t.amount),
                tender_id=t.tender_id,
                payment_token=t.payment_token,
                auth_code=t.auth_code,
                store_credit_code=code,
            )
            for t, code in zip(quote.tenders, codes, strict=True)
        ],
        refund_to=cmd.refund_to,
        reason=cmd.reason,
        note=cmd.note,
        approved_by=cmd.approved_by,
        created_at=stamp,
        updated_at=stamp,
        processor_ref=None,
        erp_ref=None,
        decline_reason=None,
    )


def _inventory_returned(
    sale: SaleRecord, return_id: str, lines: Sequence[LineRequest]
) -> dict[str, Any]:
    """`inventory.returned` data: the restocked units, with the SKU and GTIN they sold as."""
    items = []
    for line in lines:
        sku, gtin = sale.items[line.line_id]
        items.append(
            InventoryItem(line_id=line.line_id, sku=sku, gtin=gtin, quantity=line.quantity)
        )
    return dump(InventoryReturned(return_id=return_id, sale_id=sale.state.sale_id, items=items))


def refund_view(conn: sqlite3.Connection, return_id: str) -> RefundView | None:
    """The refund as the API and HQ see it, built from the ledger's own rows."""
    r = conn.execute("SELECT * FROM returns WHERE return_id = ?", (return_id,)).fetchone()
    if r is None:
        return None
    cur = r["currency"]

    def s(minor: int) -> str:
        return fmt(from_minor(minor, cur), cur)

    lines = [
        RefundLine(
            line_id=x["line_id"],
            quantity=x["quantity"],
            amount=s(x["amount"]),
            tax=s(x["tax"]),
            reason=x["reason"],
            restock=bool(x["restock"]),
        )
        for x in conn.execute(
            "SELECT * FROM return_lines WHERE return_id = ? ORDER BY rowid", (return_id,)
        )
    ]
    tenders = [
        RefundTender(
            type=t["type"],
            amount=s(t["amount"]),
            tender_id=t["source_tender_id"],
            payment_token=t["payment_token"],
            auth_code=t["auth_code"],
            store_credit_code=t["store_credit_code"],
        )
        for t in conn.execute(
            "SELECT * FROM return_tenders WHERE return_id = ? ORDER BY tender_no", (return_id,)
        )
    ]
    return RefundView(
        return_id=return_id,
        sale_id=r["sale_id"],
        kind=r["kind"],
        status=r["status"],
        offline=bool(r["offline"]),
        currency=cur,
        subtotal=s(r["subtotal"]),
        discount=s(r["discount"]),
        tax=s(r["tax"]),
        total=s(r["total"]),
        shipping=Shipping(amount=s(r["shipping_amount"]), tax=s(r["shipping_tax"])),
        lines=lines,
        tenders=tenders,
        refund_to=r["refund_to"],
        reason=r["reason"],
        note=r["note"],
        approved_by=r["approved_by"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        processor_ref=r["processor_ref"],
        erp_ref=r["erp_ref"],
        decline_reason=r["decline_reason"],
    )
