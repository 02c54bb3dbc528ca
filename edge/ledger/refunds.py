"""Refunds: one transaction holds the return, its lines and tenders, its outbox events,
its audit record and its idempotency key, so a refund is there whole or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

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
from edge.ledger.audit import append_audit
from edge.ledger.outbox import Origin, append_event
from edge.ledger.sales import load_sale_state
from edge.ledger.timefmt import iso


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
    kind: str
    sale_id: str | None
    lines: tuple[LineRequest, ...]
    refund_to: str
    amount: Decimal | None
    currency: str | None
    reason: str | None
    note: str | None
    register_id: str | None
    approved_by: str | None
    offline: bool


@dataclass(frozen=True)
class RefundOutcome:
    status: int
    body: dict[str, Any]
    replayed: bool
    last_seq: int | None


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
    return RefundOutcome(row["status"], json.loads(row["response"]), True, None)


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
    quote, sale_channel = _quote(conn, cmd, rules, at)
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
    _insert(conn, cmd, quote, return_id, rules, at)
    view = refund_view(conn, return_id)
    assert view is not None
    event = append_event(
        conn,
        origin,
        "refund.requested",
        {
            **view,
            "register_id": cmd.register_id,
            "client_id": cmd.client_id,
            "sale_channel": sale_channel,
        },
        at,
    )
    last_seq = event.seq
    restocked = [line for line in cmd.lines if line.restock]
    if restocked and cmd.sale_id is not None:
        last_seq = _inventory_event(conn, origin, cmd.sale_id, return_id, restocked, at)
    append_audit(
        conn,
        at=at,
        actor=cmd.client_id,
        action="refund.created",
        subject=return_id,
        detail={
            "kind": cmd.kind,
            "sale_id": cmd.sale_id,
            "total": view["total"],
            "currency": quote.currency,
            "approved_by": cmd.approved_by,
            "offline": cmd.offline,
            "event_id": event.event_id,
        },
    )
    conn.execute(
        "INSERT INTO idempotency_keys (client_id, key, fingerprint, status, response, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (cmd.client_id, cmd.idempotency_key, cmd.fingerprint, 201, json.dumps(view), iso(at)),
    )
    return RefundOutcome(201, view, False, last_seq)


def _quote(
    conn: sqlite3.Connection, cmd: RefundCommand, rules: RefundRules, at: datetime
) -> tuple[RefundQuote, str | None]:
    if cmd.kind != "receipt":
        assert cmd.amount is not None
        assert cmd.currency is not None
        tender = TenderRefund(type=cmd.refund_to, amount=cmd.amount, sources=())
        return RefundQuote(cmd.currency, (), ZERO, ZERO, (tender,), unlinked=cmd.amount), None
    assert cmd.sale_id is not None
    state = load_sale_state(conn, cmd.sale_id)
    if state is None:
        raise NotFound(f"no sale {cmd.sale_id} is recorded here", "sale_id")
    (channel,) = conn.execute(
        "SELECT channel FROM sales WHERE sale_id = ?", (cmd.sale_id,)
    ).fetchone()
    quote = quote_refund(
        state,
        [RequestedLine(line.line_id, line.quantity) for line in cmd.lines],
        now=at,
        window_days=rules.window_days,
        refund_to=cmd.refund_to,
        tender_order=rules.tender_order,
        refund_shipping=rules.refund_shipping,
    )
    return quote, channel


def _check_offline(conn: sqlite3.Connection, quote: RefundQuote, rules: RefundRules) -> None:
    cur = quote.currency
    card = sum((t.amount for t in quote.tenders if t.type == "card"), ZERO)
    if card == 0:
        return
    (pending_minor,) = conn.execute(
        "SELECT coalesce(sum(t.amount), 0) FROM return_tenders t JOIN returns r USING (return_id)"
        " WHERE r.offline = 1 AND r.status = 'pending' AND r.currency = ? AND t.type = 'card'",
        (cur,),
    ).fetchone()
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


def _insert(
    conn: sqlite3.Connection,
    cmd: RefundCommand,
    quote: RefundQuote,
    return_id: str,
    rules: RefundRules,
    at: datetime,
) -> None:
    cur = quote.currency

    def m(amount: Decimal) -> int:
        return to_minor(amount, cur)

    stamp = iso(at)
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


def _inventory_event(
    conn: sqlite3.Connection,
    origin: Origin,
    sale_id: str,
    return_id: str,
    lines: Sequence[LineRequest],
    at: datetime,
) -> int:
    items = []
    for line in lines:
        row = conn.execute(
            "SELECT sku, gtin FROM sale_lines WHERE sale_id = ? AND line_id = ?",
            (sale_id, line.line_id),
        ).fetchone()
        items.append(
            {
                "line_id": line.line_id,
                "sku": row["sku"],
                "gtin": row["gtin"],
                "quantity": line.quantity,
            }
        )
    data = {"return_id": return_id, "sale_id": sale_id, "items": items}
    return append_event(conn, origin, "inventory.returned", data, at).seq


def refund_view(conn: sqlite3.Connection, return_id: str) -> dict[str, Any] | None:
    """The refund as the API and HQ see it."""
    r = conn.execute("SELECT * FROM returns WHERE return_id = ?", (return_id,)).fetchone()
    if r is None:
        return None
    cur = r["currency"]

    def s(minor: int) -> str:
        return fmt(from_minor(minor, cur), cur)

    lines = [
        {
            "line_id": x["line_id"],
            "quantity": x["quantity"],
            "amount": s(x["amount"]),
            "tax": s(x["tax"]),
            "reason": x["reason"],
            "restock": bool(x["restock"]),
        }
        for x in conn.execute(
            "SELECT * FROM return_lines WHERE return_id = ? ORDER BY rowid", (return_id,)
        )
    ]
    tenders = []
    for t in conn.execute(
        "SELECT * FROM return_tenders WHERE return_id = ? ORDER BY tender_no", (return_id,)
    ):
        tender: dict[str, Any] = {"type": t["type"], "amount": s(t["amount"])}
        if t["source_tender_id"] is not None:
            tender["tender_id"] = t["source_tender_id"]
        if t["payment_token"] is not None:
            tender["payment_token"] = t["payment_token"]
            tender["auth_code"] = t["auth_code"]
        if t["store_credit_code"] is not None:
            tender["store_credit_code"] = t["store_credit_code"]
        tenders.append(tender)
    return {
        "return_id": return_id,
        "sale_id": r["sale_id"],
        "kind": r["kind"],
        "status": r["status"],
        "offline": bool(r["offline"]),
        "currency": cur,
        "subtotal": s(r["subtotal"]),
        "discount": s(r["discount"]),
        "tax": s(r["tax"]),
        "total": s(r["total"]),
        "shipping": {"amount": s(r["shipping_amount"]), "tax": s(r["shipping_tax"])},
        "lines": lines,
        "tenders": tenders,
        "refund_to": r["refund_to"],
        "reason": r["reason"],
        "note": r["note"],
        "approved_by": r["approved_by"],
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
        "processor_ref": r["processor_ref"],
        "erp_ref": r["erp_ref"],
        "decline_reason": r["decline_reason"],
    }
