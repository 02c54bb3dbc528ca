"""ERP field-mapping profiles (Shopify, NetSuite, SAP): a full refund event maps to each
system's document; one without its order or payment reference is refused, naming the
field. The simulated ERP with a profile books the document where the digest reads it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from edge.hq.processor import Decision, RefundRequest
from edge.hq.recon.erp import ProfiledErp
from edge.hq.recon.erp_profiles import (
    PROFILES,
    MissingReference,
    NetSuiteProfile,
    SapProfile,
    ShopifyProfile,
    profile,
)
from edge.hq.store import HqStore
from edge.hq.tables import erp_documents
from tests.hq.test_recon_digest import STORE, add_refunds, digest_of, refund_data

GW = "gw-01"


def request(**changes: Any) -> RefundRequest:
    data = {**refund_data("R-0042-7", shipping="5.00"), **changes}
    return RefundRequest("R-0042-7", STORE, GW, "USD", Decimal(data["total"]), data)


def test_shopify_refund() -> None:
    doc = ShopifyProfile().document(request(), "SIM-1")["refund"]
    assert doc["order_id"] == "S-1"
    assert doc["currency"] == "USD"
    assert doc["refund_line_items"] == [
        {"line_item_id": "1", "quantity": 3, "subtotal": "30.00", "total_tax": "1.00",
         "restock_type": "return"},
        {"line_item_id": "2", "quantity": 1, "subtotal": "10.00", "total_tax": "0.80",
         "restock_type": "return"},
    ]  # fmt: skip
    (txn,) = doc["transactions"]
    assert txn == {
        "kind": "refund",
        "amount": "46.80",
        "gateway": "shopify_payments",
        "parent_id": "T1",
        "authorization": "SIM-1",
    }
    assert "R-0042-7" in doc["note"]


def test_netsuite_credit_memo() -> None:
    doc = NetSuiteProfile().document(request(), "SIM-1")
    assert doc["recordType"] == "creditMemo"
    assert doc["externalId"] == "R-0042-7"
    assert doc["createdFrom"] == {"id": "S-1"}
    assert doc["entity"] == {"id": "STORE-0042"}
    assert doc["currency"] == {"refName": "USD"}
    first, second = doc["item"]["items"]
    assert first == {
        "item": {"id": "1"},
        "quantity": 3,
        "rate": "10.0000",
        "amount": "30.00",
        "taxCode": {"id": "TAX"},
    }
    assert second["amount"] == "10.00"
    assert (doc["shippingCost"], doc["taxTotal"], doc["total"]) == ("5.00", "1.80", "46.80")
    lines = sum(Decimal(x["amount"]) for x in doc["item"]["items"])
    assert lines + Decimal(doc["shippingCost"]) + Decimal(doc["taxTotal"]) == Decimal(doc["total"])


def test_sap_fi_document_balances() -> None:
    doc = SapProfile().document(request(), "SIM-1")
    header = doc["DOCUMENTHEADER"]
    assert (header["REF_DOC_NO"], header["DOC_TYPE"], header["COMP_CODE"]) == (
        "R-0042-7",
        "DG",
        "1000",
    )
    assert header["DOC_DATE"] == header["PSTNG_DATE"] == "20261122"
    (customer,) = doc["ACCOUNTRECEIVABLE"]
    assert (customer["ALLOC_NMBR"], customer["PAYMT_REF"]) == ("S-1", "SIM-1")
    amounts = doc["CURRENCYAMOUNT"]
    assert amounts[0] == {"ITEMNO_ACC": "0000000001", "CURRENCY": "USD", "AMT_DOCCUR": "-46.80"}
    assert sum(Decimal(a["AMT_DOCCUR"]) for a in amounts) == 0
    items = {a["ITEMNO_ACC"] for a in amounts}
    posted = {x["ITEMNO_ACC"] for x in doc["ACCOUNTGL"] + doc["ACCOUNTTAX"]} | {"0000000001"}
    assert items == posted
    assert [a["AMT_DOCCUR"] for a in amounts[1:]] == ["30.00", "10.00", "5.00", "1.80"]


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("shopify", "order_id"),
        ("netsuite", "createdFrom"),
        ("sap", "ACCOUNTRECEIVABLE.ALLOC_NMBR"),
    ],
)
def test_a_partial_refund_is_refused_naming_the_field(name: str, field: str) -> None:
    partial_sync = request(sale_id=None)
    with pytest.raises(MissingReference) as refused:
        profile(name).document(partial_sync, "SIM-1")  # type: ignore[arg-type]
    assert refused.value.field == field
    assert field in str(refused.value)
    assert "R-0042-7" in str(refused.value)


def test_payment_references_are_required_where_the_system_needs_them() -> None:
    with pytest.raises(MissingReference) as sap:
        SapProfile().document(request(), None)
    assert sap.value.field == "ACCOUNTRECEIVABLE.PAYMT_REF"
    no_parent = request(tenders=[{"type": "card", "amount": "46.80"}])
    with pytest.raises(MissingReference) as shopify:
        ShopifyProfile().document(no_parent, "SIM-1")
    assert shopify.value.field == "transactions[0].parent_id"
    cash = request(tenders=[{"type": "cash", "amount": "46.80"}])
    assert ShopifyProfile().document(cash, None)["refund"]["transactions"][0]["gateway"] == "cash"


@pytest.fixture
async def hq(db_url: str) -> AsyncIterator[HqStore]:
    async with HqStore(db_url) as opened:
        yield opened


async def documents(hq: HqStore) -> list[dict[str, Any]]:
    async def query(conn: AsyncConnection) -> list[dict[str, Any]]:
        rows = (await conn.execute(select(erp_documents))).mappings()
        return [dict(r) for r in rows]

    return await hq.read(query)


@pytest.mark.parametrize("name", PROFILES)
async def test_the_profiled_erp_books_what_the_digest_then_lists(hq: HqStore, name: str) -> None:
    full, orphan = refund_data("R-1"), refund_data("R-2", sale_id=None, kind="no_receipt")
    await add_refunds(hq, [full, orphan], {"R-1": "received", "R-2": "received"})
    erp = ProfiledErp(hq, profile(name))  # type: ignore[arg-type]
    settled = Decision("settled", "SIM-1")
    for data in (full, orphan):
        req = RefundRequest(data["return_id"], STORE, GW, "USD", Decimal(data["total"]), data)
        refs = [await erp.post(req, settled) for _ in range(2)]  # a retry books nothing new
        if data is full:
            assert refs[0] is not None
            assert refs[0] == refs[1]
        else:
            assert refs == [None, None]
    assert (erp.counters["posted"], erp.counters["refused"]) == (2, 2)
    (doc,) = await documents(hq)
    assert (doc["return_id"], doc["profile"], doc["presence"]) == ("R-1", name, "posted")
    assert json.loads(doc["document"]) == profile(name).document(  # type: ignore[arg-type]
        RefundRequest("R-1", STORE, GW, "USD", Decimal(full["total"]), full), "SIM-1"
    )
    digest = await digest_of(hq)
    by_id = {e.return_id: e for e in digest.refunds}
    assert by_id["R-1"].erp_ref == doc["doc_id"] == by_id["R-1"].external_ref
    assert by_id["R-1"].total == Decimal(full["total"])
    assert by_id["R-2"].erp_ref is None  # refused: HQ's own record, nothing in the ERP
