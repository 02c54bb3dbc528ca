"""One typed view per record, everywhere: HTTP bodies, outbox event data and bus payloads
are the same objects, `/openapi.json` documents exactly those classes, its examples and
links lead from a sale to its refund, and the suite's response check catches drift."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from edge.domain.views import (
    InventoryReturned,
    RefundRequested,
    RefundView,
    SaleView,
    adapter,
    dump,
)
from edge.events import RefundUpdated
from tests.core.conftest import Gateway, sale
from tests.openapi_check import OpenApiResponses, ResponseCheck, ResponseViolation


async def openapi(gw: Gateway) -> dict[str, Any]:
    async with gw.http.get(f"{gw.base}/openapi.json") as r:
        return dict(await r.json())


def operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        op["operationId"]: (method, path, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }


def evaluate(expression: Any, response: dict[str, Any]) -> Any:
    """An OpenAPI runtime expression `$response.body#/pointer`, anywhere inside a value."""
    if isinstance(expression, dict):
        return {k: evaluate(v, response) for k, v in expression.items()}
    if isinstance(expression, list):
        return [evaluate(v, response) for v in expression]
    if isinstance(expression, str) and expression.startswith("$response.body#/"):
        value: Any = response
        for part in expression.removeprefix("$response.body#/").split("/"):
            value = value[int(part)] if isinstance(value, list) else value[part]
        return value
    return expression


# ---- the views are the bodies, the events and the bus payloads ---------------------------


async def test_http_outbox_and_bus_carry_the_same_views(gw: Gateway) -> None:
    heard: list[RefundUpdated] = []
    gw.ctx.bus.subscribe(RefundUpdated, heard.append)
    body = sale()
    status, sold, _ = await gw.call("POST", "/v1/sales", body)
    assert status == 201
    refund = {
        "sale_id": body["sale_id"],
        "lines": [{"line_id": "1", "quantity": 1, "restock": True}],
        "register_id": "lane-3",
    }
    status, refunded, _ = await gw.call("POST", "/v1/refunds", refund, key="views-1")
    assert status == 201
    status, replayed, headers = await gw.call("POST", "/v1/refunds", refund, key="views-1")
    assert (status, headers["Idempotent-Replayed"], replayed) == (201, "true", refunded)

    db = sqlite3.connect(gw.ledger.path)
    data = {
        kind: json.loads(envelope)["data"]
        for kind, envelope in db.execute("SELECT type, envelope FROM outbox ORDER BY seq")
    }
    assert data["sale.recorded"] == sold
    requested = adapter(RefundRequested).validate_python(data["refund.requested"])
    assert (requested.register_id, requested.sale_channel) == ("lane-3", "store")
    extra = {"register_id", "client_id", "sale_channel"}
    assert {k: v for k, v in dump(requested).items() if k not in extra} == refunded
    returned = adapter(InventoryReturned).validate_python(data["inventory.returned"])
    assert returned.items[0].quantity == 1

    [update] = heard
    assert isinstance(update.refund, RefundView)
    assert update.model_dump(mode="json")["refund"] == refunded
    assert (update.return_id, update.status) == (refunded["return_id"], "pending")
    # What the ledger built without validation passes validation unchanged.
    assert dump(adapter(SaleView).validate_python(sold)) == sold
    assert dump(adapter(RefundView).validate_python(refunded)) == refunded


async def test_refund_tenders_leave_out_what_does_not_apply(gw: Gateway) -> None:
    body = sale(tenders=[{"tender_id": "c1", "type": "cash", "amount": "34.18"}])
    await gw.call("POST", "/v1/sales", body)
    refund = {"sale_id": body["sale_id"], "lines": [{"line_id": "1", "quantity": 1}]}
    _, cash, _ = await gw.call("POST", "/v1/refunds", refund, key="cash-1")
    assert cash["tenders"] == [{"type": "cash", "amount": "17.09", "tender_id": "c1"}]
    credit = {**refund, "refund_to": "store_credit"}
    _, sc, _ = await gw.call("POST", "/v1/refunds", credit, key="credit-1")
    assert set(sc["tenders"][0]) == {"type", "amount", "tender_id", "store_credit_code"}


async def test_a_refund_reads_back_exactly_as_it_was_answered(gw: Gateway) -> None:
    """The writer answers with a view built from what it wrote; reading the rows back gives
    the same view, and the same JSON, for every kind of tender and refund; a retry gets the
    same bytes again."""
    await gw.manager()
    approval = {"manager_id": "m-17", "pin": "482913"}
    split = sale(sale_id="S-SPLIT")
    split["tenders"] = [
        {"tender_id": "g1", "type": "gift_card", "amount": "14.18"},
        {"tender_id": "k1", "type": "card", "amount": "20.00", "payment_token": "tok_x"},
    ]
    cash = sale(sale_id="S-CASH", tenders=[{"tender_id": "c", "type": "cash", "amount": "34.18"}])
    for body in (sale(), split, cash):
        assert (await gw.call("POST", "/v1/sales", body))[0] == 201
    one = [{"line_id": "1", "quantity": 1, "reason": "damaged", "restock": True}]
    free = {"sale_id": None, "amount": "7.50", "currency": "USD", "reason": "no receipt"}
    refunds = [
        {"sale_id": sale()["sale_id"], "lines": one, "note": "Größe passt nicht \u2028 \x7f"},
        {"sale_id": "S-SPLIT", "lines": [{"line_id": "1", "quantity": 2}]},
        {"sale_id": "S-CASH", "lines": one, "refund_to": "store_credit"},
        {"sale_id": "S-CASH", "lines": one, "register_id": "lane-3"},
        {**free, "kind": "no_receipt", "refund_to": "cash", "approval": approval},
        {**free, "kind": "goodwill", "approval": approval},
    ]
    auth = {"Authorization": f"Bearer {await gw.token()}"}
    for n, body in enumerate(refunds):
        headers = {**auth, "Idempotency-Key": f"back-{n}"}
        async with gw.http.post(f"{gw.base}/v1/refunds", json=body, headers=headers) as r:
            answered = await r.read()
            assert r.status == 201, answered
        url = f"{gw.base}/v1/refunds/{json.loads(answered)['return_id']}"
        async with gw.http.get(url, headers=auth) as r:
            read = await r.read()
        # The writer's JSON of the refund is, byte for byte, what pydantic writes of the
        # view read back from the rows.
        assert read == answered
        async with gw.http.post(f"{gw.base}/v1/refunds", json=body, headers=headers) as r:
            assert (r.headers["Idempotent-Replayed"], await r.read()) == ("true", answered)


# ---- /openapi.json: the handlers' classes, examples and links ------------------------------


async def test_response_schemas_are_the_view_classes(gw: Gateway) -> None:
    doc = await openapi(gw)
    ops = operations(doc)
    for operation_id, model in [
        ("post_sale", SaleView),
        ("get_sale", SaleView),
        ("post_refund", RefundView),
        ("get_refund", RefundView),
        ("lookup", "LookupResult"),
    ]:
        _, _, op = ops[operation_id]
        name = model if isinstance(model, str) else model.__name__
        ok = [r for s, r in op["responses"].items() if s.startswith("2")]
        assert ok
        for response in ok:
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{name}"
    refund = doc["components"]["schemas"]["RefundView"]
    assert refund["properties"]["kind"]["enum"] == ["receipt", "no_receipt", "goodwill"]
    assert refund["properties"]["status"]["enum"] == ["pending", "settled", "declined"]
    assert refund["additionalProperties"] is False


async def test_every_operation_has_an_id_a_valid_example_and_links(gw: Gateway) -> None:
    doc = await openapi(gw)
    registry: Registry[Any] = Registry().with_resource(
        "urn:doc", Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    ops = operations(doc)
    assert len(ops) == sum(len(methods) for methods in doc["paths"].values())
    for operation_id, (method, path, op) in ops.items():
        for param in op.get("parameters", []):
            if param["required"]:
                assert "example" in param, (operation_id, param["name"])
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            assert "example" in content, (method, path, media)
            schema = content["schema"]
            if "$ref" in schema:
                schema = {"$ref": "urn:doc" + schema["$ref"]}
            Draft202012Validator(schema, registry=registry).validate(content["example"])
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                assert link["operationId"] in ops, (operation_id, link)
    links = {
        (source, link["operationId"])
        for source, (_, _, op) in ops.items()
        for response in op["responses"].values()
        for link in response.get("links", {}).values()
    }
    assert {
        ("post_sale", "get_sale"),
        ("post_sale", "post_refund"),
        ("post_refund", "get_refund"),
    } <= links


async def test_the_examples_and_links_lead_from_a_sale_to_its_refund(gw: Gateway) -> None:
    ops = operations(await openapi(gw))

    def example(operation_id: str) -> dict[str, Any]:
        return dict(ops[operation_id][2]["requestBody"]["content"]["application/json"]["example"])

    def link(source: str, name: str) -> dict[str, Any]:
        responses = ops[source][2]["responses"]
        return dict(
            next(r["links"][name] for r in responses.values() if name in r.get("links", {}))
        )

    status, sold, _ = await gw.call("POST", "/v1/sales", example("post_sale"))
    assert status == 201, sold
    get_sale = link("post_sale", "GetSale")
    status, again, _ = await gw.call(
        "GET", "/v1/sales/{}".format(evaluate(get_sale["parameters"]["sale_id"], sold))
    )
    assert (status, again) == (200, sold)
    linked = evaluate(link("post_sale", "RefundSale")["requestBody"], sold)
    status, refunded, _ = await gw.call("POST", "/v1/refunds", linked, key="linked-1")
    assert status == 201, refunded
    status, found, _ = await gw.call(
        "POST",
        "/v1/returns/lookup",
        evaluate(link("post_refund", "LookUpRefund")["requestBody"], refunded),
    )
    assert (status, found["refund"]["return_id"]) == (200, refunded["return_id"])
    return_id = evaluate(link("post_refund", "GetRefund")["parameters"]["return_id"], refunded)
    status, got, _ = await gw.call("GET", f"/v1/refunds/{return_id}")
    assert (status, got) == (200, refunded)
    key = next(p for p in ops["post_refund"][2]["parameters"] if p["in"] == "header")["example"]
    status, second, _ = await gw.call("POST", "/v1/refunds", example("post_refund"), key=key)
    assert (status, second["total"]) == (201, "17.09"), second
    status, looked, _ = await gw.call("POST", "/v1/returns/lookup", example("lookup"))
    assert (status, looked["eligibility"]["eligible"]) == (200, False), looked
    assert looked["eligibility"]["reasons"] == ["nothing-left-to-return"]


# ---- the response check itself --------------------------------------------------------------


@pytest.fixture
async def drifted(gw: Gateway) -> AsyncIterator[tuple[str, OpenApiResponses]]:
    """A server that answers the gateway's paths with what the gateway must never send."""
    _, good, _ = await gw.call("POST", "/v1/sales", sale())

    async def sale_without_total(request: web.Request) -> web.Response:
        return web.json_response({k: v for k, v in good.items() if k != "total"})

    async def money_as_number(request: web.Request) -> web.Response:
        return web.json_response({**good, "total": 34.18})

    async def undocumented_status(request: web.Request) -> web.Response:
        return web.json_response(good, status=202)

    async def refund_without_location(request: web.Request) -> web.Response:
        status, body, _ = await gw.call("POST", "/v1/refunds", await request.json(), key="drift")
        return web.json_response(body, status=status)

    async def text_body(request: web.Request) -> web.Response:
        return web.Response(text="fine")

    app = web.Application()
    app.router.add_get("/v1/sales/no-total", sale_without_total)
    app.router.add_get("/v1/sales/number", money_as_number)
    app.router.add_post("/v1/sales", undocumented_status)
    app.router.add_post("/v1/refunds", refund_without_location)
    app.router.add_get("/v1/refunds/{return_id}", text_body)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", OpenApiResponses(await openapi(gw))
    finally:
        await runner.cleanup()


async def test_the_response_check_catches_every_kind_of_drift(
    gw: Gateway, drifted: tuple[str, OpenApiResponses]
) -> None:
    base, responses = drifted
    check = ResponseCheck()
    check.responses = responses
    refund = {"sale_id": sale()["sale_id"], "lines": [{"line_id": "1", "quantity": 1}]}
    cases = [
        ("GET", "/v1/sales/no-total", None, "'total' is a required property"),
        ("GET", "/v1/sales/number", None, "34.18 is not of type 'string'"),
        ("POST", "/v1/sales", sale(), "status 202 is not documented"),
        ("POST", "/v1/refunds", refund, "required response header Location is missing"),
        ("GET", "/v1/refunds/R-1", None, "text/plain is not documented for 200"),
        ("GET", "/nowhere", None, "404 text/plain for an undocumented operation"),
    ]
    async with aiohttp.ClientSession(middlewares=(check,)) as http:
        for method, path, body, message in cases:
            with pytest.raises(ResponseViolation, match=message):
                async with http.request(method, base + path, json=body):
                    pass
    # And the gateway's own answers to the same requests pass it.
    status, _, _ = await gw.call("GET", f"/v1/sales/{refund['sale_id']}")
    assert status == 200
