"""The ledger's refunds as reconciliation reads them (`edge.domain.recon.StoreRefund`).

One query per table for the whole period, not one per refund: a digest may cover
thousands of refunds, and this runs on the reader connection, where a slow read delays
every GET. Amounts leave here as `Decimal` in the refund's currency.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from edge.contract.timefmt import iso, parse_iso
from edge.domain.money import from_minor
from edge.domain.recon import SoldLine, StoreLine, StoreRefund

Which = Literal["created", "pending-before", "named"]

# The refunds a run looks at, as a fixed filter on `returns r` (no SQL is built from input).
_FILTERS: dict[Which, str] = {
    "created": "r.created_at >= ?1 AND r.created_at < ?2",
    "pending-before": "r.status = 'pending' AND r.created_at < ?2",
    "named": "r.return_id IN (SELECT value FROM json_each(?1)) AND ?2 = ''",
}
KEYED_SOURCES = ("register", "handheld")


@dataclass
class _Parts:
    lines: list[tuple[str, StoreLine]] = field(default_factory=list)
    tenders: list[tuple[str, Decimal]] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)


def store_refunds(
    conn: sqlite3.Connection, period_from: datetime, period_to: datetime
) -> list[StoreRefund]:
    """Every refund the ledger made with `created_at` in [period_from, period_to)."""
    return _load(conn, "created", iso(period_from), iso(period_to))


def pending_refunds(conn: sqlite3.Connection, created_before: datetime) -> list[StoreRefund]:
    """Refunds HQ has neither settled nor declined, made before `created_before` (the
    checkpoint's candidates; the domain decides which are overdue)."""
    return _load(conn, "pending-before", "", iso(created_before))


def named_refunds(conn: sqlite3.Connection, return_ids: Collection[str]) -> list[StoreRefund]:
    """The ledger's refunds among `return_ids` (a digest may name refunds made before its
    period: they are matched by id, never reported missing)."""
    if not return_ids:
        return []
    return _load(conn, "named", json.dumps(sorted(return_ids)), "")


def sold_units(conn: sqlite3.Connection, references: Collection[str]) -> dict[tuple[str, str], int]:
    """Units sold per (sale id, line id) for the sales among `references`: how the domain
    tells an HQ-only refund of more units than were sold."""
    if not references:
        return {}
    return {
        (str(sale_id), str(line_id)): int(quantity)
        for sale_id, line_id, quantity in conn.execute(
            "SELECT sale_id, line_id, quantity FROM sale_lines"
            " WHERE sale_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(references)),),
        )
    }


def count_refunds(conn: sqlite3.Connection, period_from: datetime, period_to: datetime) -> int:
    """How many refunds were made in [period_from, period_to)."""
    (n,) = conn.execute(
        "SELECT count(*) FROM returns WHERE created_at >= ? AND created_at < ?",
        (iso(period_from), iso(period_to)),
    ).fetchone()
    return int(n)


def _sql(template: str, where: str) -> str:
    """`template` with one of the fixed `_FILTERS` in place of `{where}`."""
    return template.replace("{where}", where)


def _load(conn: sqlite3.Connection, which: Which, a: str, b: str) -> list[StoreRefund]:
    where = _FILTERS[which]
    params = (a, b)
    sold = _sold_lines(conn, where, params)
    parts: dict[str, _Parts] = defaultdict(_Parts)
    for row in conn.execute(
        _sql(
            "SELECT rl.return_id, rl.line_id, rl.quantity, rl.amount, rl.tax, r.currency,"
            " sl.sku, sl.category, rl.sale_id,"
            " (SELECT coalesce(sum(p.quantity), 0) FROM return_lines p JOIN returns pr"
            "   ON pr.return_id = p.return_id WHERE p.sale_id = rl.sale_id"
            "   AND p.line_id = rl.line_id AND (pr.created_at, pr.return_id)"
            "   < (r.created_at, r.return_id))"
            " FROM returns r JOIN return_lines rl ON rl.return_id = r.return_id"
            " LEFT JOIN sale_lines sl ON sl.sale_id = rl.sale_id AND sl.line_id = rl.line_id"
            " WHERE {where} ORDER BY rl.rowid",
            where,
        ),
        params,
    ):
        cur = row[5]
        line = StoreLine(
            line_id=row[1],
            sku=row[6],
            category=row[7],
            quantity=int(row[2]),
            amount=from_minor(row[3], cur),
            tax=from_minor(row[4], cur),
            sold=sold[row[8]][row[1]],
            returned_before=int(row[9]),
        )
        parts[row[0]].lines.append((row[1], line))
    for row in conn.execute(
        _sql(
            "SELECT t.return_id, t.type, t.amount, r.currency, t.store_credit_code"
            " FROM returns r JOIN return_tenders t ON t.return_id = r.return_id"
            " WHERE {where} ORDER BY t.return_id, t.tender_no",
            where,
        ),
        params,
    ):
        parts[row[0]].tenders.append((row[1], from_minor(row[2], row[3])))
        if row[4] is not None:
            parts[row[0]].codes.append(row[4])
    delivered = _delivered(conn, where, params)
    sales = _sale_facts(conn, where, params)
    out: list[StoreRefund] = []
    for r in conn.execute(
        _sql(
            "SELECT r.return_id, r.sale_id, r.kind, r.status, r.offline, r.currency,"
            " r.refund_to, r.tax, r.total, r.shipping_amount, r.shipping_tax, r.approved_by,"
            " r.created_at, r.updated_at, c.role, s.channel, s.customer_ref"
            " FROM returns r LEFT JOIN clients c ON c.client_id = r.client_id"
            " LEFT JOIN sales s ON s.sale_id = r.sale_id"
            " WHERE {where} ORDER BY r.created_at, r.return_id",
            where,
        ),
        params,
    ):
        out.append(_refund(r, parts[r[0]], delivered.get(r[0]), sales.get(r[1]), sold))
    return out


def _refund(
    r: sqlite3.Row,
    parts: _Parts,
    delivered: datetime | None,
    sale: _SaleFacts | None,
    sold: dict[str, dict[str, SoldLine]],
) -> StoreRefund:
    (return_id, sale_id, kind, status, offline, cur, refund_to, tax, total) = tuple(r)[:9]
    shipping_amount, shipping_tax, approved_by, created_at, updated_at = tuple(r)[9:14]
    role, channel, customer_ref = tuple(r)[14:17]
    online = channel == "online"
    return StoreRefund(
        return_id=return_id,
        sale_id=sale_id,
        currency=cur,
        total=from_minor(total, cur),
        tax=from_minor(tax, cur),
        tenders=tuple(parts.tenders),
        lines=tuple(line for _, line in parts.lines),
        kind=kind,
        refund_to=refund_to,
        hq_status=status,
        created_at=parse_iso(created_at),
        decided_at=None if status == "pending" else parse_iso(updated_at),
        approved_by=approved_by,
        offline=bool(offline),
        source=role if role in KEYED_SOURCES else "register",
        customer_ref=customer_ref,
        channel="online" if online else "store",
        order_id=sale_id if online else None,
        shipping_amount=from_minor(shipping_amount, cur),
        shipping_tax=from_minor(shipping_tax, cur),
        sent_at=delivered,
        store_credit_codes=tuple(parts.codes),
        sale_tender_types=() if sale is None else sale.tender_types,
        sale_credit_codes=() if sale is None else sale.credit_codes,
        sale_order_discount=sale.order_discount if sale is not None else Decimal(0),
        sale_lines=tuple(sold.get(sale_id or "", {}).values()),
    )


def _sold_lines(
    conn: sqlite3.Connection, where: str, params: tuple[str, str]
) -> dict[str, dict[str, SoldLine]]:
    """The lines of every sale a selected refund refers to, as priced at the sale."""
    out: dict[str, dict[str, SoldLine]] = defaultdict(dict)
    for row in conn.execute(
        _sql(
            "SELECT l.sale_id, l.line_id, l.quantity, l.unit_price, l.discount, l.order_discount,"
            " l.tax, s.currency FROM sale_lines l JOIN sales s ON s.sale_id = l.sale_id"
            " WHERE l.sale_id IN (SELECT r.sale_id FROM returns r"
            " WHERE {where} AND r.sale_id IS NOT NULL) ORDER BY l.sale_id, l.line_no",
            where,
        ),
        params,
    ):
        cur = row[7]
        out[row[0]][row[1]] = SoldLine(
            line_id=row[1],
            quantity=int(row[2]),
            unit_price=from_minor(row[3], cur),
            discount=from_minor(row[4], cur),
            order_discount=from_minor(row[5], cur),
            tax=from_minor(row[6], cur),
        )
    return out


@dataclass(frozen=True)
class _SaleFacts:
    tender_types: tuple[str, ...]
    credit_codes: tuple[str, ...]
    order_discount: Decimal


def _sale_facts(
    conn: sqlite3.Connection, where: str, params: tuple[str, str]
) -> dict[str, _SaleFacts]:
    """How each referenced sale was paid (store credit spent on it is named by its code,
    which the register sends as the tender's `payment_token`) and its order discount."""
    types: dict[str, list[str]] = defaultdict(list)
    codes: dict[str, list[str]] = defaultdict(list)
    discounts: dict[str, Decimal] = {}
    for sale_id, kind, token, order_discount, cur in conn.execute(
        _sql(
            "SELECT t.sale_id, t.type, t.payment_token, s.order_discount, s.currency"
            " FROM sale_tenders t JOIN sales s ON s.sale_id = t.sale_id"
            " WHERE t.sale_id IN (SELECT r.sale_id FROM returns r"
            " WHERE {where} AND r.sale_id IS NOT NULL) ORDER BY t.sale_id, t.tender_no",
            where,
        ),
        params,
    ):
        types[sale_id].append(kind)
        if kind == "store_credit" and token:
            codes[sale_id].append(token)
        discounts[sale_id] = from_minor(order_discount, cur)
    return {
        sale_id: _SaleFacts(tuple(types[sale_id]), tuple(codes[sale_id]), discounts[sale_id])
        for sale_id in types
    }


def _delivered(
    conn: sqlite3.Connection, where: str, params: tuple[str, str]
) -> dict[str, datetime]:
    """When HQ acknowledged each selected refund's `refund.requested` event (absent when
    not yet, or when the acked event was pruned)."""
    out: dict[str, datetime] = {}
    for return_id, acked_at in conn.execute(
        _sql(
            "SELECT json_extract(o.envelope, '$.data.return_id') AS rid, o.acked_at FROM outbox o"
            " WHERE o.type = 'refund.requested' AND o.acked_at IS NOT NULL"
            " AND o.occurred_at >= (SELECT min(r.created_at) FROM returns r WHERE {where})"
            " AND rid IN (SELECT r.return_id FROM returns r WHERE {where})",
            where,
        ),
        params,
    ):
        if return_id is not None:
            out[str(return_id)] = parse_iso(acked_at)
    return out
