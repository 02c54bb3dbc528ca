"""Sales journal and look-up through real HTTP against a real server and SQLite file."""

from __future__ import annotations

import sqlite3

from tests.core.conftest import Gateway, sale


async def test_sale_is_recorded_with_allocation_and_journaled(gw: Gateway) -> None:
    body = sale()
    status, data, _ = await gw.call("POST", "/v1/sales", body)
    assert status == 201, data
    line = data["lines"][0]
    assert (line["order_discount"], line["paid"], data["total"]) == ("5.00", "30.98", "34.18")
    assert line["returnable_quantity"] == 2

    status, again, _ = await gw.call("POST", "/v1/sales", body)
    assert (status, again["sale_id"]) == (200, body["sale_id"])

    body["lines"][0]["description"] = "changed"
    status, problem, _ = await gw.call("POST", "/v1/sales", body)
    assert status == 409
    assert problem["type"].endswith("/sale-conflict")

    db = sqlite3.connect(gw.ledger.path)
    events = db.execute("SELECT type, seq FROM outbox ORDER BY seq").fetchall()
    assert events == [("sale.recorded", 1)], "one event for one sale, none for the replay"
    assert db.execute("SELECT action FROM audit_log ORDER BY seq").fetchall() == [
        ("client.added",),
        ("sale.recorded",),
    ]


async def test_order_discount_is_allocated_across_lines_to_the_cent(gw: Gateway) -> None:
    body = sale(
        sale_id="S-ALLOC",
        lines=[
            {"line_id": "a", "sku": "A", "quantity": 1, "unit_price": "10.00"},
            {"line_id": "b", "sku": "B", "quantity": 1, "unit_price": "10.00"},
            {"line_id": "c", "sku": "C", "quantity": 1, "unit_price": "10.00"},
        ],
        order_discount="1.00",
        tenders=[{"tender_id": "c1", "type": "cash", "amount": "29.00"}],
    )
    status, data, _ = await gw.call("POST", "/v1/sales", body)
    assert status == 201, data
    assert [ln["order_discount"] for ln in data["lines"]] == ["0.34", "0.33", "0.33"]


async def test_tender_mismatch_and_currency_exponents(gw: Gateway) -> None:
    bad = sale(sale_id="S-MISMATCH")
    bad["tenders"][0]["amount"] = "34.17"
    status, problem, _ = await gw.call("POST", "/v1/sales", bad)
    assert status == 422
    assert problem["type"].endswith("/tender-mismatch")

    yen = sale(
        sale_id="S-JPY",
        currency="JPY",
        order_discount="0",
        lines=[{"line_id": "1", "sku": "X", "quantity": 1, "unit_price": "1200.5"}],
        tenders=[{"tender_id": "t", "type": "cash", "amount": "1200"}],
    )
    status, problem, _ = await gw.call("POST", "/v1/sales", yen)
    assert status == 422
    assert {
        "field": "lines[0].unit_price",
        "message": "JPY amounts have at most 0 decimal places",
    } in problem["errors"]

    kwd = sale(
        sale_id="S-KWD",
        currency="KWD",
        order_discount="0",
        lines=[{"line_id": "1", "sku": "X", "quantity": 3, "unit_price": "1.250", "tax": "0.001"}],
        tenders=[{"tender_id": "t", "type": "cash", "amount": "3.751"}],
    )
    status, data, _ = await gw.call("POST", "/v1/sales", kwd)
    assert status == 201, data
    assert data["total"] == "3.751"


async def test_money_must_be_a_string_and_fields_are_named(gw: Gateway) -> None:
    body = sale(sale_id="S-NUM")
    body["lines"][0]["unit_price"] = 19.99
    body["lines"][0]["quantity"] = 0
    status, problem, _ = await gw.call("POST", "/v1/sales", body)
    assert status == 422
    assert problem["type"].endswith("/validation-failed")
    fields = {e["field"] for e in problem["errors"]}
    assert {"lines[0].unit_price", "lines[0].quantity"} <= fields


async def test_card_number_is_refused_and_never_stored(gw: Gateway, caplog) -> None:
    pan = "4111 1111 1111 1111"
    body = sale(sale_id="S-PAN")
    body["lines"][0]["description"] = f"paid with {pan}"
    body["tenders"][0]["auth_code"] = "4111111111111111"
    status, problem, _ = await gw.call("POST", "/v1/sales", body)
    assert status == 422
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"lines[0].description", "tenders[0].auth_code"}
    assert "4111" not in str(problem)
    assert "4111" not in caplog.text
    raw = (
        gw.ledger.path.read_bytes()
        + gw.ledger.path.with_name(gw.ledger.path.name + "-wal").read_bytes()
    )
    assert b"4111" not in raw

    ok = sale(sale_id="S-GTIN")
    ok["lines"][0]["gtin"] = "4006381333931"  # Luhn-valid by chance, still a product code
    ok["lines"][0]["sku"] = "4111111111111111"
    status, _, _ = await gw.call("POST", "/v1/sales", ok)
    assert status == 201


async def test_lookup_by_sale_receipt_and_return_id(gw: Gateway) -> None:
    body = sale()
    await gw.call("POST", "/v1/sales", body)
    for code in (body["sale_id"], f"RCPT:{body['sale_id']}", f"]C1{body['sale_id']}"):
        status, found, _ = await gw.call("POST", "/v1/returns/lookup", {"code": code})
        assert status == 200, found
        assert found["sale"]["sale_id"] == body["sale_id"]
        assert found["eligibility"]["eligible"] is True

    status, refund, _ = await gw.call(
        "POST",
        "/v1/refunds",
        {"sale_id": body["sale_id"], "lines": [{"line_id": "1", "quantity": 2}]},
        key="all",
    )
    assert status == 201, refund
    status, found, _ = await gw.call("POST", "/v1/returns/lookup", {"code": refund["return_id"]})
    assert (status, found["matched"]) == (200, "return_id")
    assert found["refund"]["return_id"] == refund["return_id"]
    assert found["eligibility"]["reasons"] == ["nothing-left-to-return"]

    status, problem, _ = await gw.call("POST", "/v1/returns/lookup", {"code": "NO-SUCH-1"})
    assert status == 404
    assert problem["type"].endswith("/not-found")


async def test_get_sale_unknown_is_not_found(gw: Gateway) -> None:
    status, problem, headers = await gw.call("GET", "/v1/sales/nope")
    assert status == 404
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["status"] == 404
