"""Refunds through real HTTP: every rule's refusal, all refund kinds, one transaction each."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

import pytest

from edge.contract.timefmt import utcnow
from edge.settings import Settings
from tests.core.conftest import FixedLink, Gateway, make_settings, sale


def refund(sale_id: str, qty: int = 1, **extra):
    return {"sale_id": sale_id, "lines": [{"line_id": "1", "quantity": qty}], **extra}


async def test_partial_refunds_return_exactly_what_was_paid(gw: Gateway) -> None:
    body = sale()
    await gw.call("POST", "/v1/sales", body)
    s1, first, h1 = await gw.call("POST", "/v1/refunds", refund(body["sale_id"]), key="a")
    s2, second, _ = await gw.call("POST", "/v1/refunds", refund(body["sale_id"]), key="b")
    assert (s1, s2) == (201, 201), (first, second)
    assert h1["Location"] == f"/v1/refunds/{first['return_id']}"
    assert first["return_id"].startswith("R-0001-")
    assert (first["total"], second["total"]) == ("17.09", "17.09")
    assert [first["lines"][0]["amount"], second["lines"][0]["amount"]] == ["15.49", "15.49"]
    assert first["tenders"] == [
        {
            "type": "card",
            "amount": "17.09",
            "tender_id": "t1",
            "payment_token": "tok_9f8e",
            "auth_code": "A1B2C3",
        }
    ]
    _, after, _ = await gw.call("GET", f"/v1/sales/{body['sale_id']}")
    assert after["lines"][0]["returned_quantity"] == 2
    assert after["lines"][0]["refunded_amount"] == "34.18"
    assert after["tenders"][0]["refunded_amount"] == "34.18"
    status, problem, _ = await gw.call("POST", "/v1/refunds", refund(body["sale_id"]), key="c")
    assert status == 409
    assert problem["type"].endswith("/quantity-exceeds-returnable")
    assert problem["errors"][0]["field"] == "lines[0].quantity"
    status, got, _ = await gw.call("GET", f"/v1/refunds/{first['return_id']}")
    assert (status, got["status"], got["processor_ref"]) == (200, "pending", None)


async def test_each_refund_is_one_transaction_with_events_and_audit(gw: Gateway) -> None:
    body = sale()
    await gw.call("POST", "/v1/sales", body)
    restock = {
        "sale_id": body["sale_id"],
        "lines": [{"line_id": "1", "quantity": 1, "restock": True, "reason": "unwanted"}],
    }
    status, data, _ = await gw.call("POST", "/v1/refunds", restock, key="r1")
    assert status == 201, data
    db = sqlite3.connect(gw.ledger.path)
    types = [r[0] for r in db.execute("SELECT type FROM outbox ORDER BY seq")]
    assert types == ["sale.recorded", "refund.requested", "inventory.returned"]
    seqs = [r[0] for r in db.execute("SELECT seq FROM outbox ORDER BY seq")]
    assert seqs == [1, 2, 3]
    actions = [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY seq")]
    assert actions[-1] == "refund.created"
    (env,) = db.execute("SELECT envelope FROM outbox WHERE type = 'refund.requested'").fetchone()
    assert data["return_id"] in env
    assert '"payment_token":"tok_9f8e"' in env, "the refund travels bound to the original token"


async def test_window_final_sale_and_unknown_sale(gw: Gateway) -> None:
    old = sale(sale_id="S-OLD")
    old["occurred_at"] = (utcnow() - timedelta(days=31)).isoformat()
    await gw.call("POST", "/v1/sales", old)
    status, problem, _ = await gw.call("POST", "/v1/refunds", refund("S-OLD"), key="w")
    assert (status, problem["type"].rsplit("/", 1)[1]) == (422, "return-window-expired")

    final = sale(sale_id="S-FINAL")
    final["lines"][0]["final_sale"] = True
    await gw.call("POST", "/v1/sales", final)
    status, problem, _ = await gw.call("POST", "/v1/refunds", refund("S-FINAL"), key="f")
    assert (status, problem["type"].rsplit("/", 1)[1]) == (422, "final-sale")

    status, problem, _ = await gw.call("POST", "/v1/refunds", refund("S-NONE"), key="n")
    assert (status, problem["type"].rsplit("/", 1)[1]) == (404, "not-found")


def big_sale(sale_id: str = "S-BIG") -> dict:
    body = sale(sale_id=sale_id, order_discount="0")
    body["lines"][0].update(quantity=1, unit_price="250.00", discount="0.00", tax="0.00")
    body["tenders"][0]["amount"] = "250.00"
    return body


async def test_approval_over_threshold_by_pin(gw: Gateway) -> None:
    await gw.manager()
    await gw.call("POST", "/v1/sales", big_sale())
    status, problem, _ = await gw.call("POST", "/v1/refunds", refund("S-BIG"), key="p0")
    assert (status, problem["type"].rsplit("/", 1)[1]) == (403, "approval-required")
    wrong = refund("S-BIG", approval={"manager_id": "m-17", "pin": "000000"})
    status, problem, _ = await gw.call("POST", "/v1/refunds", wrong, key="p1")
    assert (status, problem["errors"][0]["field"]) == (403, "approval.pin")
    good = refund("S-BIG", approval={"manager_id": "m-17", "pin": "482913"})
    status, data, _ = await gw.call("POST", "/v1/refunds", good, key="p1")
    assert status == 201, data
    assert data["approved_by"] == "m-17"
    db = sqlite3.connect(gw.ledger.path)
    actions = [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY seq")]
    assert "approval.pin_failed" in actions
    assert "482913" not in " ".join(r[0] for r in db.execute("SELECT detail FROM audit_log"))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(
        tmp_path,
        managers={"max_pin_failures": 3, "lockout_s": 600},
        refunds={"refund_shipping": True},
    )


async def test_wrong_pins_lock_the_manager(gw: Gateway) -> None:
    await gw.manager()
    await gw.call("POST", "/v1/sales", big_sale())
    wrong = refund("S-BIG", approval={"manager_id": "m-17", "pin": "111111"})
    for i in range(3):
        status, _, _ = await gw.call("POST", "/v1/refunds", wrong, key=f"x{i}")
        assert status == 403
    right = refund("S-BIG", approval={"manager_id": "m-17", "pin": "482913"})
    status, problem, headers = await gw.call("POST", "/v1/refunds", right, key="x9")
    assert status == 429
    assert problem["type"].endswith("/approval-locked")
    assert int(headers["Retry-After"]) > 0


async def test_no_receipt_and_goodwill_go_through_the_same_path(gw: Gateway) -> None:
    await gw.manager()
    goodwill = {
        "sale_id": None,
        "kind": "goodwill",
        "amount": "15.00",
        "currency": "USD",
        "reason": "late delivery",
    }
    status, problem, _ = await gw.call("POST", "/v1/refunds", goodwill, key="g0")
    assert (status, problem["type"].rsplit("/", 1)[1]) == (403, "approval-required")
    goodwill["approval"] = {"manager_id": "m-17", "pin": "482913"}
    status, data, _ = await gw.call("POST", "/v1/refunds", goodwill, key="g1")
    assert status == 201, data
    assert data["kind"] == "goodwill"
    assert data["tenders"][0]["type"] == "store_credit"
    assert data["tenders"][0]["store_credit_code"].startswith("SC-")
    cash = {**goodwill, "kind": "no_receipt", "refund_to": "cash", "amount": "7.50"}
    status, data, _ = await gw.call("POST", "/v1/refunds", cash, key="g2")
    assert (status, data["tenders"][0]["type"], data["total"]) == (201, "cash", "7.50")
    assert data["subtotal"] == "7.50"
    db = sqlite3.connect(gw.ledger.path)
    assert db.execute("SELECT count(*) FROM outbox WHERE type='refund.requested'").fetchone() == (
        2,
    )
    bad = {"sale_id": "S-1", "kind": "goodwill", "refund_to": "original"}
    status, problem, _ = await gw.call("POST", "/v1/refunds", bad, key="g3")
    assert status == 422
    assert {"sale_id", "refund_to", "amount", "currency", "reason"} <= {
        e["field"] for e in problem["errors"]
    }


async def test_gift_card_is_refunded_as_store_credit(gw: Gateway) -> None:
    body = sale(sale_id="S-GIFT")
    body["tenders"] = [
        {"tender_id": "g1", "type": "gift_card", "amount": "14.18"},
        {"tender_id": "k1", "type": "card", "amount": "20.00", "payment_token": "tok_x"},
    ]
    await gw.call("POST", "/v1/sales", body)
    status, data, _ = await gw.call("POST", "/v1/refunds", refund("S-GIFT", 2), key="gc")
    assert status == 201, data
    by_type = {t["type"]: t for t in data["tenders"]}
    assert by_type["card"]["amount"] == "20.00"
    assert by_type["store_credit"]["amount"] == "14.18"
    assert by_type["store_credit"]["store_credit_code"]


async def test_shipping_is_refunded_only_with_the_last_unit_when_configured(gw: Gateway) -> None:
    body = sale(sale_id="S-SHIP", shipping={"amount": "5.00", "tax": "0.40"})
    body["tenders"][0]["amount"] = "39.58"
    status, data, _ = await gw.call("POST", "/v1/sales", body)
    assert status == 201, data
    _, first, _ = await gw.call("POST", "/v1/refunds", refund("S-SHIP"), key="s1")
    _, last, _ = await gw.call("POST", "/v1/refunds", refund("S-SHIP"), key="s2")
    assert first["shipping"] == {"amount": "0.00", "tax": "0.00"}
    assert last["shipping"] == {"amount": "5.00", "tax": "0.40"}
    assert (first["total"], last["total"]) == ("17.09", "22.49")
    assert last["total"] == "22.49"


@pytest.mark.parametrize("link", [FixedLink(online=False)])
async def test_offline_limits_apply_to_cards_not_store_credit(gw: Gateway, link) -> None:
    await gw.manager()
    await gw.call("POST", "/v1/sales", big_sale())
    approval = {"manager_id": "m-17", "pin": "482913"}
    status, problem, _ = await gw.call(
        "POST", "/v1/refunds", refund("S-BIG", approval=approval), key="o1"
    )
    assert (status, problem["type"].rsplit("/", 1)[1]) == (409, "offline-limit-exceeded")
    status, data, _ = await gw.call(
        "POST",
        "/v1/refunds",
        refund("S-BIG", approval=approval, refund_to="store_credit"),
        key="o2",
    )
    assert (status, data["offline"], data["tenders"][0]["type"]) == (201, True, "store_credit")
    status, problem, _ = await gw.call("POST", "/v1/returns/lookup", {"code": "ORDER-77"})
    assert (status, problem["type"].rsplit("/", 1)[1]) == (503, "hq-unreachable")


async def test_two_registers_race_for_the_last_unit(gw: Gateway) -> None:
    body = sale(sale_id="S-RACE")
    await gw.call("POST", "/v1/sales", body)
    await gw.call("POST", "/v1/refunds", refund("S-RACE"), key="first")
    await gw.token("register")
    await gw.token("handheld")
    results = await asyncio.gather(
        gw.call("POST", "/v1/refunds", refund("S-RACE"), key="lane-1", role="register"),
        gw.call("POST", "/v1/refunds", refund("S-RACE"), key="lane-2", role="handheld"),
    )
    statuses = sorted(r[0] for r in results)
    assert statuses == [201, 409]
    loser = next(r for r in results if r[0] == 409)
    assert loser[1]["type"].endswith("/quantity-exceeds-returnable")
