"""Ledgers the benchmarks start from: sales and pending refunds written by the ledger's own
functions (not through HTTP, which would take minutes for 100,000 of them)."""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal
from pathlib import Path

from edge.api.schemas import SaleIn
from edge.contract.timefmt import utcnow
from edge.ledger.db import apply_migrations, open_sync
from edge.ledger.outbox import Origin
from edge.ledger.refunds import LineRequest, RefundCommand, RefundRules, create_refund
from edge.ledger.sales import record_sale
from edge.settings import load_settings

ORIGIN = Origin("0042", "gw-01")
UNITS = 200  # units on each sale's first line: far more than a benchmark refunds
BATCH = 5_000  # rows of seeding per transaction
# Offline card limits for benchmarks that leave 100,000 card refunds pending (a long outage).
WIDE_OFFLINE_ENV = {
    "EDGE_OFFLINE__MAX_CARD_REFUND": '{"USD": "1000.00"}',
    "EDGE_OFFLINE__MAX_CARD_PENDING_TOTAL": '{"USD": "100000000.00"}',
}


def sale_body(n: int, at: str) -> dict[str, object]:
    """A sale with a card and a gift card tender, as a register records one."""
    return {
        "sale_id": f"BENCH-{n}",
        "occurred_at": at,
        "currency": "USD",
        "lines": [
            {"line_id": "1", "sku": "SHIRT", "quantity": UNITS, "unit_price": "19.99", "tax": "1"},
            {"line_id": "2", "sku": "SOCKS", "quantity": 2, "unit_price": "4.50"},
        ],
        "tenders": [
            {"tender_id": "g", "type": "gift_card", "amount": "50.00"},
            {"tender_id": "c", "type": "card", "amount": "3958.00", "payment_token": "tok"},
        ],
    }


def seed_sales(conn: sqlite3.Connection, count: int, first: int = 0) -> None:
    """Record sales BENCH-<first>... in the caller's transaction, as `POST /v1/sales` does."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    at = utcnow()
    for n in range(first, first + count):
        body = SaleIn.model_validate(sale_body(n, now))
        sale = body.model_dump(mode="json")
        record_sale(
            conn,
            origin=ORIGIN,
            sale=sale,
            priced=body.priced(),
            fingerprint=f"fp-sale-{n}",
            actor="cl_bench",
            at=at,
        )


def rules(folder: Path, *, wide_offline: bool = False) -> RefundRules:
    """A gateway's default refund rules (offline card limits widened if asked)."""
    s = load_settings(None, data_dir=folder)
    per_refund, cap = s.offline.max_card_refund, s.offline.max_card_pending_total
    if wide_offline:
        per_refund, cap = {"USD": Decimal("1000.00")}, {"USD": Decimal("100000000.00")}
    return RefundRules(
        window_days=s.refunds.return_window_days,
        approval_thresholds=s.refunds.approval_threshold,
        tender_order=s.refunds.tender_refund_order,
        refund_shipping=s.refunds.refund_shipping,
        store_credit_prefix=s.refunds.store_credit_prefix,
        offline_per_refund=per_refund,
        offline_pending_cap=cap,
    )


def refund_command(n: int, sale: int, refund_to: str = "store_credit") -> RefundCommand:
    """An offline receipt refund of one unit of BENCH-<sale>, restocked."""
    return RefundCommand(
        client_id="cl_bench",
        idempotency_key=f"seed-n{n}",
        fingerprint=f"fp-n{n}",
        kind="receipt",
        sale_id=f"BENCH-{sale}",
        lines=(LineRequest("1", 1, None, restock=True),),
        refund_to=refund_to,  # type: ignore[arg-type]
        amount=None,
        currency=None,
        reason=None,
        note=None,
        register_id="lane-1",
        approved_by=None,
        offline=True,
    )


def seed_ledger(db: Path, *, sales: int, pending_card_refunds: int = 0) -> None:
    """A ledger file with `sales` sales and, on the first of them, offline card refunds that
    HQ has not settled yet (one per sale)."""
    conn = open_sync(db)
    try:
        apply_migrations(conn)
        refund_rules = rules(db.parent, wide_offline=True)
        for first in range(0, sales, BATCH):
            conn.execute("BEGIN IMMEDIATE")
            seed_sales(conn, min(BATCH, sales - first), first)
            conn.execute("COMMIT")
        for first in range(0, pending_card_refunds, BATCH):
            conn.execute("BEGIN IMMEDIATE")
            at = utcnow()
            for n in range(first, min(first + BATCH, pending_card_refunds)):
                create_refund(
                    conn, refund_command(n, n % sales, "original"), refund_rules, ORIGIN, at
                )
            conn.execute("COMMIT")
    finally:
        conn.close()
