"""Sales journal rows: recording a priced sale and reading it back with what was returned."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from edge.contract.timefmt import iso, parse_iso
from edge.domain.errors import SaleConflict
from edge.domain.money import fmt, from_minor, to_minor
from edge.domain.refund import SaleState
from edge.domain.sale import PricedLine, PricedSale
from edge.domain.tenders import OriginalTender
from edge.domain.views import Channel, SaleLine, SaleTender, SaleView, Shipping, dump
from edge.ledger.audit import append_audit
from edge.ledger.outbox import Origin, append_event


@dataclass(frozen=True)
class RecordedSale:
    sale_id: str
    created: bool
    last_seq: int | None


def record_sale(
    conn: sqlite3.Connection,
    *,
    origin: Origin,
    sale: Mapping[str, Any],
    priced: PricedSale,
    fingerprint: str,
    actor: str,
    at: datetime,
    source: str = "lan",
) -> RecordedSale:
    """Write the sale, its `sale.recorded` event and audit record; same body again is a no-op."""
    sale_id = sale["sale_id"]
    existing = conn.execute(
        "SELECT fingerprint FROM sales WHERE sale_id = ?", (sale_id,)
    ).fetchone()
    if existing is not None:
        if existing[0] != fingerprint:
            raise SaleConflict(f"sale {sale_id} was already recorded with different content")
        return RecordedSale(sale_id, created=False, last_seq=None)
    cur = priced.currency

    def m(amount: Decimal) -> int:
        return to_minor(amount, cur)

    conn.execute(
        "INSERT INTO sales (sale_id, channel, register_id, occurred_at, currency, order_discount,"
        " shipping_amount, shipping_tax, total, fingerprint, source, recorded_at, recorded_by,"
        " customer_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            sale_id,
            sale["channel"],
            sale.get("register_id"),
            iso(parse_iso(sale["occurred_at"])),
            cur,
            m(priced.order_discount),
            m(priced.shipping_amount),
            m(priced.shipping_tax),
            m(priced.total),
            fingerprint,
            source,
            iso(at),
            actor,
            sale.get("customer_ref"),
        ),
    )
    conn.executemany(
        "INSERT INTO sale_lines (sale_id, line_no, line_id, sku, gtin, description, category,"
        " quantity, unit_price, discount, order_discount, tax, paid, final_sale)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                sale_id,
                i,
                p.line_id,
                raw["sku"],
                raw.get("gtin"),
                raw.get("description") or "",
                raw.get("category"),
                p.quantity,
                m(p.unit_price),
                m(p.discount),
                m(p.order_discount),
                m(p.tax),
                m(p.paid),
                int(p.final_sale),
            )
            for i, (p, raw) in enumerate(zip(priced.lines, sale["lines"], strict=True))
        ],
    )
    conn.executemany(
        "INSERT INTO sale_tenders (sale_id, tender_no, tender_id, type, amount, payment_token,"
        " auth_code, card_brand, last4) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                sale_id,
                i,
                t["tender_id"],
                t["type"],
                m(Decimal(t["amount"])),
                t.get("payment_token"),
                t.get("auth_code"),
                t.get("card_brand"),
                t.get("last4"),
            )
            for i, t in enumerate(sale["tenders"])
        ],
    )
    view = sale_view(conn, sale_id)
    assert view is not None
    event = append_event(conn, origin, "sale.recorded", dump(view), at)
    append_audit(
        conn,
        at=at,
        actor=actor,
        action="sale.recorded",
        subject=sale_id,
        detail={"total": view.total, "currency": cur, "event_id": event.event_id},
    )
    return RecordedSale(sale_id, created=True, last_seq=event.seq)


def _returned_by_line(conn: sqlite3.Connection, sale_id: str) -> dict[str, tuple[int, int]]:
    """line_id -> (units returned, minor units refunded incl. tax)."""
    return {
        row[0]: (int(row[1]), int(row[2]))
        for row in conn.execute(
            "SELECT line_id, sum(quantity), sum(amount + tax) FROM return_lines"
            " WHERE sale_id = ? GROUP BY line_id",
            (sale_id,),
        )
    }


def _drawn_by_tender(conn: sqlite3.Connection, sale_id: str) -> dict[str, int]:
    return {
        row[0]: int(row[1])
        for row in conn.execute(
            "SELECT tender_id, sum(amount) FROM return_tender_draws WHERE sale_id = ?"
            " GROUP BY tender_id",
            (sale_id,),
        )
    }


@dataclass(frozen=True, slots=True)
class SaleRecord:
    """A recorded sale as a refund of it needs it: the state the refund rules read, the
    sale's channel, and each line's SKU and GTIN (for `inventory.returned`)."""

    state: SaleState
    channel: Channel
    items: dict[str, tuple[str, str | None]]


def load_sale_record(conn: sqlite3.Connection, sale_id: str) -> SaleRecord | None:
    """The sale and what was given back of it, read inside the caller's transaction.

    Two statements: the sale's lines, each with the sale's own columns and the units
    returned of it; its tenders, each with what was drawn from it.
    """
    lines: list[PricedLine] = []
    items: dict[str, tuple[str, str | None]] = {}
    returned: dict[str, int] = {}
    sale = None
    for r in conn.execute(
        "SELECT s.channel, s.currency, s.occurred_at, s.shipping_amount, s.shipping_tax,"
        " EXISTS (SELECT 1 FROM returns x WHERE x.sale_id = s.sale_id"
        " AND x.shipping_amount + x.shipping_tax > 0),"
        " l.line_id, l.quantity, l.unit_price, l.discount, l.order_discount, l.tax, l.paid,"
        " l.final_sale, l.sku, l.gtin, (SELECT sum(x.quantity) FROM return_lines x"
        " WHERE x.sale_id = l.sale_id AND x.line_id = l.line_id)"
        " FROM sales s JOIN sale_lines l ON l.sale_id = s.sale_id"
        " WHERE s.sale_id = ? ORDER BY l.line_no",
        (sale_id,),
    ):
        sale = r
        cur = r[1]
        line_id = r[6]
        lines.append(
            PricedLine(
                line_id=line_id,
                quantity=r[7],
                unit_price=from_minor(r[8], cur),
                discount=from_minor(r[9], cur),
                order_discount=from_minor(r[10], cur),
                tax=from_minor(r[11], cur),
                paid=from_minor(r[12], cur),
                final_sale=bool(r[13]),
            )
        )
        items[line_id] = (r[14], r[15])
        if r[16] is not None:
            returned[line_id] = int(r[16])
    if sale is None:  # every recorded sale has at least one line
        return None
    channel, cur, occurred_at, shipping_amount, shipping_tax, shipping_refunded = sale[:6]
    tenders: list[OriginalTender] = []
    drawn: dict[str, Decimal] = {}
    for r in conn.execute(
        "SELECT tender_id, type, amount, payment_token, auth_code, (SELECT sum(d.amount)"
        " FROM return_tender_draws d WHERE d.sale_id = t.sale_id AND d.tender_id = t.tender_id)"
        " FROM sale_tenders t WHERE sale_id = ? ORDER BY tender_no",
        (sale_id,),
    ):
        tenders.append(
            OriginalTender(
                tender_id=r[0],
                type=r[1],
                amount=from_minor(r[2], cur),
                payment_token=r[3],
                auth_code=r[4],
            )
        )
        if r[5] is not None:
            drawn[r[0]] = from_minor(r[5], cur)
    state = SaleState(
        sale_id=sale_id,
        currency=cur,
        occurred_at=parse_iso(occurred_at),
        lines=tuple(lines),
        tenders=tuple(tenders),
        shipping_amount=from_minor(shipping_amount, cur),
        shipping_tax=from_minor(shipping_tax, cur),
        returned=returned,
        refunded_by_tender=drawn,
        shipping_refunded=bool(shipping_refunded),
    )
    return SaleRecord(state, channel, items)


def sale_view(conn: sqlite3.Connection, sale_id: str) -> SaleView | None:
    """The sale as the API shows it: allocation, paid, and what was returned per line."""
    sale = conn.execute("SELECT * FROM sales WHERE sale_id = ?", (sale_id,)).fetchone()
    if sale is None:
        return None
    cur = sale["currency"]

    def s(minor: int) -> str:
        return fmt(from_minor(minor, cur), cur)

    returned = _returned_by_line(conn, sale_id)
    drawn = _drawn_by_tender(conn, sale_id)
    lines = []
    for r in conn.execute(
        "SELECT * FROM sale_lines WHERE sale_id = ? ORDER BY line_no", (sale_id,)
    ):
        qty_back, refunded = returned.get(r["line_id"], (0, 0))
        lines.append(
            SaleLine(
                line_id=r["line_id"],
                sku=r["sku"],
                gtin=r["gtin"],
                description=r["description"],
                category=r["category"],
                quantity=r["quantity"],
                unit_price=s(r["unit_price"]),
                discount=s(r["discount"]),
                order_discount=s(r["order_discount"]),
                tax=s(r["tax"]),
                paid=s(r["paid"]),
                final_sale=bool(r["final_sale"]),
                returned_quantity=qty_back,
                returnable_quantity=0 if r["final_sale"] else r["quantity"] - qty_back,
                refunded_amount=s(refunded),
            )
        )
    tenders = [
        SaleTender(
            tender_id=r["tender_id"],
            type=r["type"],
            amount=s(r["amount"]),
            payment_token=r["payment_token"],
            auth_code=r["auth_code"],
            card_brand=r["card_brand"],
            last4=r["last4"],
            refunded_amount=s(drawn.get(r["tender_id"], 0)),
        )
        for r in conn.execute(
            "SELECT * FROM sale_tenders WHERE sale_id = ? ORDER BY tender_no", (sale_id,)
        )
    ]
    return_ids = [
        r[0]
        for r in conn.execute(
            "SELECT return_id FROM returns WHERE sale_id = ? ORDER BY created_at, return_id",
            (sale_id,),
        )
    ]
    return SaleView(
        sale_id=sale_id,
        channel=sale["channel"],
        register_id=sale["register_id"],
        occurred_at=sale["occurred_at"],
        currency=cur,
        lines=lines,
        order_discount=s(sale["order_discount"]),
        shipping=Shipping(amount=s(sale["shipping_amount"]), tax=s(sale["shipping_tax"])),
        tenders=tenders,
        total=s(sale["total"]),
        recorded_at=sale["recorded_at"],
        return_ids=return_ids,
        customer_ref=sale["customer_ref"],
    )
