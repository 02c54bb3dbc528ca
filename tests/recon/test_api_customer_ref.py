"""`customer_ref` on sales: accepted, stored and shown; a card number, an e-mail or a name
with spaces is refused naming the field; a sale without it fingerprints as before."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.api.context import fingerprint
from edge.api.schemas import SaleIn
from tests.core.conftest import SALE, Gateway, make_settings, sale
from tests.recon.lan import lan_gateway

# The fingerprint of `tests.core.conftest.SALE` as stored before `customer_ref` existed
# (the request's nine keys): a retry of a sale recorded then must still match it.
SALE_FINGERPRINT = "8d201c31c799ffe45631e96291d3ec8f613bc047f62fc2f8d407e4fe283c6ac2"
SALE_KEYS = {
    "channel",
    "currency",
    "lines",
    "occurred_at",
    "order_discount",
    "register_id",
    "sale_id",
    "shipping",
    "tenders",
}


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with lan_gateway(make_settings(tmp_path)) as gateway:
        yield gateway


def test_a_sale_without_customer_ref_fingerprints_as_before() -> None:
    data = SaleIn.model_validate(SALE).model_dump(mode="json")
    assert set(data) == SALE_KEYS
    assert fingerprint(data) == SALE_FINGERPRINT


async def test_customer_ref_is_stored_and_shown(gw: Gateway) -> None:
    body = sale(customer_ref="loyalty:7f3a9c")
    status, sold, _ = await gw.call("POST", "/v1/sales", body)
    assert (status, sold["customer_ref"]) == (201, "loyalty:7f3a9c")
    status, again, _ = await gw.call("POST", "/v1/sales", body)
    assert (status, again) == (200, sold)
    status, got, _ = await gw.call("GET", f"/v1/sales/{body['sale_id']}")
    assert (status, got) == (200, sold)
    db = sqlite3.connect(gw.ledger.path)
    (stored,) = db.execute("SELECT customer_ref FROM sales").fetchone()
    assert stored == "loyalty:7f3a9c"
    # The same sale with another customer is another sale: a conflict, not a silent edit.
    status, problem, _ = await gw.call("POST", "/v1/sales", {**body, "customer_ref": "other"})
    assert (status, problem["type"].rsplit("/", 1)[1]) == (409, "sale-conflict")


async def test_a_sale_without_customer_ref_leaves_the_key_out(gw: Gateway) -> None:
    status, sold, _ = await gw.call("POST", "/v1/sales", sale())
    assert status == 201
    assert "customer_ref" not in sold


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4111111111111111", "card number"),
        ("4111-1111-1111-1111", "card number"),
        ("ref:4111.1111.1111.1111", "card number"),
        ("jane.doe@example.com", "pattern"),
        ("Jane Doe", "pattern"),
        ("", "at least 1"),
        ("x" * 65, "at most 64"),
    ],
)
async def test_customer_ref_refusals_name_the_field(gw: Gateway, value: str, message: str) -> None:
    status, problem, headers = await gw.call("POST", "/v1/sales", sale(customer_ref=value))
    assert status == 422
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["type"].endswith("/validation-failed")
    assert [e["field"] for e in problem["errors"]] == ["customer_ref"]
    assert message in problem["errors"][0]["message"]
    if value:
        assert value not in str(problem)  # a refused value is never echoed
    db = sqlite3.connect(gw.ledger.path)
    assert db.execute("SELECT count(*) FROM sales").fetchone() == (0,)
