"""The running totals of pending offline card refunds always equal the sum they replace.

The offline cap check reads `offline_card_pending` (one row per currency) instead of summing
every refund still waiting for HQ; these tests drive any mix of online and offline refunds,
card and store credit, settlements and declines (and refusals rolled back) through the real
ledger functions, and compare the totals with the SUM query after every step.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.api.schemas import SaleIn
from edge.domain.errors import PolicyViolation
from edge.ledger.db import apply_migrations, migrations, open_sync
from edge.ledger.hq_sync import Ack, apply_acks
from edge.ledger.outbox import Origin
from edge.ledger.refunds import (
    LineRequest,
    RefundCommand,
    RefundRules,
    create_refund,
    offline_card_pending,
)
from edge.ledger.sales import record_sale

ORIGIN = Origin("0042", "gw-01")
AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CURRENCIES = ("USD", "EUR")
SALES_PER_CURRENCY = 2
RULES = RefundRules(
    window_days=30,
    approval_thresholds={c: Decimal("100000") for c in CURRENCIES},
    tender_order=("card", "gift_card", "store_credit", "cash"),
    refund_shipping=False,
    store_credit_prefix="SC",
    offline_per_refund={c: Decimal("150.00") for c in CURRENCIES},
    offline_pending_cap={c: Decimal("400.00") for c in CURRENCIES},  # some offline refusals
)
SUM_QUERY = (
    "SELECT coalesce(sum(t.amount), 0) FROM return_tenders t JOIN returns r USING (return_id)"
    " WHERE r.offline = 1 AND r.status = 'pending' AND r.currency = ? AND t.type = 'card'"
)


def _sale_id(currency: str, n: int) -> str:
    return f"S-{currency}-{n}"


def _record_sales(conn: sqlite3.Connection) -> None:
    """Sales of 40 units at 10.00 paid 300.00 by card and 100.00 in cash."""
    for currency in CURRENCIES:
        for n in range(SALES_PER_CURRENCY):
            body = SaleIn.model_validate(
                {
                    "sale_id": _sale_id(currency, n),
                    "occurred_at": (AT - timedelta(hours=1)).isoformat(),
                    "currency": currency,
                    "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 40, "unit_price": "10"}],
                    "tenders": [
                        {"tender_id": "c", "type": "card", "amount": "300", "payment_token": "tk"},
                        {"tender_id": "k", "type": "cash", "amount": "100"},
                    ],
                }
            )
            sale = body.model_dump(mode="json")
            record_sale(
                conn,
                origin=ORIGIN,
                sale=sale,
                priced=body.priced(),
                fingerprint=f"fp-{sale['sale_id']}",
                actor="test",
                at=AT,
            )


@dataclass(frozen=True)
class Refund:
    currency: str
    sale: int
    quantity: int
    offline: bool
    to_card: bool


@dataclass(frozen=True)
class Decide:
    pick: int
    settle: bool


def _in_savepoint(conn: sqlite3.Connection, fn: object) -> bool:
    """Run a ledger job as the writer does: in its own savepoint, undone if it is refused."""
    assert callable(fn)
    conn.execute("SAVEPOINT job")
    try:
        fn()
    except PolicyViolation:
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return False
    conn.execute("RELEASE job")
    return True


def _refund(conn: sqlite3.Connection, op: Refund, key: str) -> None:
    cmd = RefundCommand(
        client_id="cl-test",
        idempotency_key=key,
        fingerprint=key,
        kind="receipt",
        sale_id=_sale_id(op.currency, op.sale),
        lines=(LineRequest("1", op.quantity, None, restock=False),),
        refund_to="original" if op.to_card else "store_credit",
        amount=None,
        currency=None,
        reason=None,
        note=None,
        register_id=None,
        approved_by=None,
        offline=op.offline,
    )
    _in_savepoint(conn, lambda: create_refund(conn, cmd, RULES, ORIGIN, AT))


def _decide(conn: sqlite3.Connection, op: Decide) -> None:
    pending = conn.execute(
        "SELECT o.event_id, r.return_id FROM returns r JOIN outbox o"
        " ON o.type = 'refund.requested' AND json_extract(o.envelope, '$.data.return_id')"
        " = r.return_id WHERE r.status = 'pending' ORDER BY r.rowid"
    ).fetchall()
    if not pending:
        return
    event_id, return_id = pending[op.pick % len(pending)]
    status = "settled" if op.settle else "declined"
    reason = None if op.settle else "card expired"
    ack = Ack(event_id, status, return_id=return_id, processor_ref="p-1", reason=reason)
    apply_acks(conn, [ack], [], AT)


def _assert_totals_match(conn: sqlite3.Connection) -> None:
    for currency in CURRENCIES:
        (summed,) = conn.execute(SUM_QUERY, (currency,)).fetchone()
        assert offline_card_pending(conn, currency) == summed, currency


operations = st.lists(
    st.one_of(
        st.builds(
            Refund,
            currency=st.sampled_from(CURRENCIES),
            sale=st.integers(0, SALES_PER_CURRENCY - 1),
            quantity=st.integers(1, 12),
            offline=st.booleans(),
            to_card=st.booleans(),
        ),
        st.builds(Decide, pick=st.integers(0, 50), settle=st.booleans()),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(ops=operations)
def test_running_totals_equal_the_sum_after_any_mix_of_refunds_and_outcomes(
    ops: list[Refund | Decide],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conn = open_sync(Path(tmp) / "ledger.sqlite3")
        try:
            apply_migrations(conn)
            conn.execute("BEGIN IMMEDIATE")
            _record_sales(conn)
            for n, op in enumerate(ops):
                if isinstance(op, Refund):
                    _refund(conn, op, f"key-n{n}")
                else:
                    _decide(conn, op)
                _assert_totals_match(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()


def test_the_cap_counts_what_is_pending_and_frees_what_hq_decided(tmp_path: Path) -> None:
    conn = open_sync(tmp_path / "ledger.sqlite3")
    apply_migrations(conn)
    _record_sales(conn)
    for n in range(3):  # 3 x 100.00 on the card, under the 400.00 cap
        _refund(conn, Refund("USD", 0, 10, offline=True, to_card=True), f"cap-n{n}")
    assert offline_card_pending(conn, "USD") == 30_000
    _refund(conn, Refund("USD", 1, 12, offline=True, to_card=True), "cap-over")
    assert offline_card_pending(conn, "USD") == 30_000, "120.00 more would pass the cap"
    _refund(conn, Refund("USD", 1, 12, offline=True, to_card=False), "cap-credit")
    assert offline_card_pending(conn, "USD") == 30_000, "store credit is not capped"
    _decide(conn, Decide(0, settle=True))
    _decide(conn, Decide(0, settle=False))
    assert offline_card_pending(conn, "USD") == 10_000
    _refund(conn, Refund("USD", 1, 12, offline=True, to_card=True), "cap-after")
    assert offline_card_pending(conn, "USD") == 22_000
    _assert_totals_match(conn)
    conn.close()


def test_migration_0004_backfills_the_totals_from_an_existing_ledger(tmp_path: Path) -> None:
    conn = open_sync(tmp_path / "ledger.sqlite3")
    for version, script in migrations():
        if version <= 3:
            conn.executescript(script)
    conn.execute("PRAGMA user_version = 3")
    # Today's writer records the sales and refunds; it also writes `customer_ref` (schema
    # v6), a column lent to the v3 schema for this and taken back before migrating.
    conn.execute("ALTER TABLE sales ADD COLUMN customer_ref TEXT")
    _record_sales(conn)
    ops = [
        Refund("USD", 0, 5, offline=False, to_card=True),
        Refund("USD", 1, 3, offline=False, to_card=True),
        Refund("EUR", 0, 7, offline=False, to_card=True),
        Refund("EUR", 1, 2, offline=False, to_card=False),
    ]
    for n, op in enumerate(ops):
        _refund(conn, op, f"old-n{n}")
    conn.execute("ALTER TABLE sales DROP COLUMN customer_ref")
    # Refunds an older version made offline, one of them since settled by HQ.
    conn.execute("UPDATE returns SET offline = 1")
    conn.execute("UPDATE returns SET status = 'settled' WHERE rowid = 2")
    assert apply_migrations(conn) >= 4
    assert offline_card_pending(conn, "USD") == 5_000
    assert offline_card_pending(conn, "EUR") == 7_000
    _assert_totals_match(conn)
    conn.close()
