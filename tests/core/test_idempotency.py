"""Idempotency-Key semantics, exactly as the contract states them."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import timedelta

from edge.contract.timefmt import utcnow
from edge.ledger import people
from tests.core.conftest import Gateway, sale

REFUND = {"sale_id": "0042-03-20261122-0007", "lines": [{"line_id": "1", "quantity": 1}]}


async def test_same_key_same_body_replays_status_and_body(gw: Gateway) -> None:
    await gw.call("POST", "/v1/sales", sale())
    s1, first, h1 = await gw.call("POST", "/v1/refunds", REFUND, key="k-1")
    s2, again, h2 = await gw.call("POST", "/v1/refunds", REFUND, key="k-1")
    assert (s1, s2) == (201, 201)
    assert again == first
    assert "Idempotent-Replayed" not in h1
    assert h2["Idempotent-Replayed"] == "true"
    db = sqlite3.connect(gw.ledger.path)
    assert db.execute("SELECT count(*) FROM returns").fetchone() == (1,)


async def test_key_reused_with_another_body(gw: Gateway) -> None:
    await gw.call("POST", "/v1/sales", sale())
    await gw.call("POST", "/v1/refunds", REFUND, key="k-2")
    other = {**REFUND, "note": "different"}
    status, problem, _ = await gw.call("POST", "/v1/refunds", other, key="k-2")
    assert (status, problem["type"].rsplit("/", 1)[1]) == (422, "idempotency-key-reused")


async def test_missing_key(gw: Gateway) -> None:
    status, problem, _ = await gw.call("POST", "/v1/refunds", REFUND)
    assert (status, problem["type"].rsplit("/", 1)[1]) == (400, "idempotency-key-missing")
    status, _, _ = await gw.call("POST", "/v1/refunds", REFUND, key="x" * 256)
    assert status == 400


async def test_validation_failure_is_not_stored_under_the_key(gw: Gateway) -> None:
    await gw.call("POST", "/v1/sales", sale())
    bad = {**REFUND, "lines": [{"line_id": "1", "quantity": -1}]}
    status, _, _ = await gw.call("POST", "/v1/refunds", bad, key="k-3")
    assert status == 422
    status, data, headers = await gw.call("POST", "/v1/refunds", REFUND, key="k-3")
    assert status == 201, data
    assert "Idempotent-Replayed" not in headers


async def test_in_flight_key_gets_409(gw: Gateway) -> None:
    await gw.call("POST", "/v1/sales", sale())
    await gw.token()
    release = threading.Event()
    registered = asyncio.Event()

    class Watched(dict):
        def __setitem__(self, key, value) -> None:
            super().__setitem__(key, value)
            registered.set()

    gw.ctx.in_flight = Watched()
    # Hold the single writer so the first request stays in flight.
    blocker = asyncio.create_task(gw.ledger.write(lambda conn: release.wait(10)))
    first = asyncio.create_task(gw.call("POST", "/v1/refunds", REFUND, key="k-4"))
    await asyncio.wait_for(registered.wait(), 5)
    status, problem, headers = await gw.call("POST", "/v1/refunds", REFUND, key="k-4")
    release.set()
    assert (status, problem["type"].rsplit("/", 1)[1]) == (409, "idempotency-key-in-flight")
    assert headers["Retry-After"] == "1"
    assert (await first)[0] == 201
    await blocker


async def test_keys_are_kept_for_the_retention_then_pruned(gw: Gateway) -> None:
    await gw.call("POST", "/v1/sales", sale())
    await gw.call("POST", "/v1/refunds", REFUND, key="k-5")
    assert await gw.ledger.prune_idempotency(timedelta(hours=24)) == 0
    assert await gw.ledger.prune_idempotency(timedelta(seconds=-1)) == 1
    db = sqlite3.connect(gw.ledger.path)
    assert db.execute("SELECT count(*) FROM idempotency_keys").fetchone() == (0,)


async def test_keys_are_scoped_per_client(gw: Gateway) -> None:
    await gw.call("POST", "/v1/sales", sale())
    s1, a, _ = await gw.call("POST", "/v1/refunds", REFUND, key="shared", role="register")
    s2, b, _ = await gw.call("POST", "/v1/refunds", REFUND, key="shared", role="handheld")
    assert (s1, s2) == (201, 201)
    assert a["return_id"] != b["return_id"]


async def test_a_retried_approved_refund_is_not_approved_again(gw: Gateway) -> None:
    """A plain refund's key is looked up in its own transaction; one that carries an
    approval is looked up first, so its retry neither checks a PIN again nor needs the
    manager any more."""
    await gw.manager()
    big = sale(sale_id="S-APPROVED", order_discount="0")
    big["lines"][0].update(quantity=1, unit_price="250.00", discount="0.00", tax="0.00")
    big["tenders"][0]["amount"] = "250.00"
    await gw.call("POST", "/v1/sales", big)
    approved = {
        "sale_id": "S-APPROVED",
        "lines": [{"line_id": "1", "quantity": 1}],
        "approval": {"manager_id": "m-17", "pin": "482913"},
    }
    status, first, _ = await gw.call("POST", "/v1/refunds", approved, key="a-1")
    assert (status, first["approved_by"]) == (201, "m-17")
    await gw.ledger.write(lambda conn: people.remove_manager(conn, "m-17", utcnow()))
    status, again, headers = await gw.call("POST", "/v1/refunds", approved, key="a-1")
    assert (status, headers["Idempotent-Replayed"], again) == (201, "true", first)
    status, problem, _ = await gw.call("POST", "/v1/refunds", approved, key="a-2")
    assert (status, problem["errors"][0]["field"]) == (403, "approval.pin"), (
        "a new request with the removed manager's PIN is checked, and refused"
    )
