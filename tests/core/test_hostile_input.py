"""Hostile input through real HTTP: card numbers hidden in text, bodies and headers built to
crash the parser, parallel PIN guesses, and what aiohttp itself answers and logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from typing import Any

import aiohttp
import argon2
import pytest

from edge.api import pin_check
from edge.contract.timefmt import iso, parse_iso, utcnow
from edge.domain.refund import return_eligibility
from edge.domain.views import EligibleLine, SaleView
from edge.ledger import people
from tests.core.conftest import Gateway, sale

PAN_TAIL = "4111 1111 1111 1111 1228"  # a test card number followed by its expiry
NO_TRACEBACK = "Traceback"


def slug(problem: dict[str, Any]) -> str:
    return str(problem["type"]).rsplit("/", 1)[1]


def fields(problem: dict[str, Any]) -> set[str]:
    return {e["field"] for e in problem.get("errors") or []}


def ledger_bytes(gw: Gateway) -> bytes:
    path = gw.ledger.path
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert NO_TRACEBACK not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], "nothing is logged with a traceback"


class CountingLink:
    """An HQ link that records what it was asked, to prove a refused code never left."""

    online = True
    state = "online"

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def lookup_order(self, code: str) -> SaleView | None:
        self.asked.append(code)
        return None


async def raw_request(
    gw: Gateway, head: bytes, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (aiohttp's client would refuse to), read the whole answer."""
    host, port = gw.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + b"\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()  # the request says Connection: close
    finally:
        writer.close()
    head_raw, _, content = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head_raw.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, content


# ---- the card-number guard -----------------------------------------------------------------


async def test_card_number_inside_longer_digit_text_is_refused_everywhere(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = sale(sale_id="S-PAN-TAIL")
    body["lines"][0]["description"] = f"note {PAN_TAIL} end"
    body["lines"][0]["category"] = "4111-1111-1111-1111/12-28"
    body["tenders"][0]["payment_token"] = "tok 4111.1111.1111.1111"
    body["tenders"][0]["card_brand"] = "visa 12 4111111111111111"
    status, problem, headers = await gw.call("POST", "/v1/sales", body)
    assert (status, slug(problem)) == (422, "validation-failed")
    assert headers["Content-Type"].startswith("application/problem+json")
    assert fields(problem) == {
        "lines[0].description",
        "lines[0].category",
        "tenders[0].payment_token",
        "tenders[0].card_brand",
    }

    ok = sale(sale_id="S-OK")
    ok["lines"][0]["gtin"] = "4006381333931"  # Luhn-valid by chance: still a product code
    ok["lines"][0]["sku"] = "4111111111111111"  # SKUs are exempt
    ok["lines"][0]["description"] = "call 555-123-4567 before 10.30, order 12345"
    status, _, _ = await gw.call("POST", "/v1/sales", ok)
    assert status == 201

    refund: dict[str, Any] = {"sale_id": "S-OK", "lines": [{"line_id": "1", "quantity": 1}]}
    status, problem, _ = await gw.call("POST", "/v1/refunds", refund, key=PAN_TAIL)
    assert (status, fields(problem)) == (422, {"Idempotency-Key"})
    status, problem, _ = await gw.call(
        "POST", "/v1/refunds", {**refund, "note": f"card {PAN_TAIL}"}, key="k-note"
    )
    assert (status, fields(problem)) == (422, {"note"})
    reason = [{"line_id": "1", "quantity": 1, "reason": "x 4111-1111 1111-1111"}]
    status, problem, _ = await gw.call(
        "POST", "/v1/refunds", {**refund, "lines": reason}, key="k-reason"
    )
    assert (status, fields(problem)) == (422, {"lines[0].reason"})

    link = CountingLink()
    gw.ctx.link = link
    for code in (PAN_TAIL, "4111111111111111", "RCPT:4111-1111-1111-1111"):
        status, problem, _ = await gw.call("POST", "/v1/returns/lookup", {"code": code})
        assert (status, fields(problem)) == (422, {"code"}), code
    assert link.asked == [], "a code that looks like a card number never goes to HQ"
    # An unknown key is named in the problem; one that looks like a card number is not.
    status, problem, _ = await gw.call(
        "POST", "/v1/returns/lookup", {"code": "S-OK", "4111111111111111": 1}
    )
    assert status == 422

    for text in (json.dumps(problem), caplog.text):
        assert "4111" not in text
    assert b"4111 1111" not in ledger_bytes(gw)
    assert b"4111.1111" not in ledger_bytes(gw)
    no_tracebacks(caplog)


async def test_a_sale_id_held_here_is_an_id_not_a_card_number(gw: Gateway) -> None:
    """Ids are exempt: a sale recorded as 4111-1111-1111-1111 is found by its id."""
    status, _, _ = await gw.call("POST", "/v1/sales", sale(sale_id="4111-1111-1111-1111"))
    assert status == 201
    status, found, _ = await gw.call("POST", "/v1/returns/lookup", {"code": "4111-1111-1111-1111"})
    assert (status, found["sale"]["sale_id"]) == (200, "4111-1111-1111-1111")


# ---- bodies built to crash the parser or the ledger ----------------------------------------


async def post_raw(gw: Gateway, path: str, data: bytes) -> tuple[int, dict[str, Any], str]:
    headers = {"Authorization": f"Bearer {await gw.token()}", "Content-Type": "application/json"}
    async with gw.http.post(f"{gw.base}{path}", data=data, headers=headers) as r:
        return r.status, await r.json(content_type=None), r.content_type


async def test_hostile_bodies_get_problems_not_500s(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    deep = b"[" * 100_000 + b"]" * 100_000
    status, problem, ctype = await post_raw(gw, "/v1/sales", deep)
    assert (status, ctype, fields(problem)) == (422, "application/problem+json", {"(body)"})

    huge_int = b'{"code": ' + b"7" * 5000 + b"}"
    status, problem, _ = await post_raw(gw, "/v1/returns/lookup", huge_int)
    assert (status, fields(problem)) == (422, {"(body)"})

    clf = sale(sale_id="S-CLF", currency="CLF", order_discount="0")
    clf["lines"][0].update(quantity=1, unit_price="999999999999999.9999", discount="0", tax="0")
    clf["tenders"][0]["amount"] = "999999999999999.9999"
    status, problem, _ = await gw.call("POST", "/v1/sales", clf)
    assert (status, slug(problem)) == (422, "validation-failed")
    assert fields(problem) == {"lines[0].unit_price", "tenders[0].amount"}

    many = sale(sale_id="S-MANY", order_discount="0")
    many["lines"][0].update(quantity=100_000, unit_price="99999999999.99", discount="0", tax="0")
    many["tenders"][0]["amount"] = "999999999999999"
    status, problem, _ = await gw.call("POST", "/v1/sales", many)
    assert (status, fields(problem)) == (422, {"lines[0].quantity", "tenders[0].amount"})

    future = sale(sale_id="S-9999", occurred_at="9999-12-31T23:59:59Z")
    status, problem, _ = await gw.call("POST", "/v1/sales", future)
    assert (status, fields(problem)) == (422, {"occurred_at"})
    status, problem, _ = await gw.call("POST", "/v1/returns/lookup", {"code": "S-9999"})
    assert (status, slug(problem)) == (404, "not-found")
    ancient = sale(sale_id="S-0001", occurred_at="0001-01-01T00:00:00+01:00")
    status, problem, _ = await gw.call("POST", "/v1/sales", ancient)
    assert (status, fields(problem)) == (422, {"occurred_at"})
    # A sale dated at the end of time that an older version stored still looks up.
    end_of_time = parse_iso("9999-12-31T23:59:59.000Z")
    unit = [EligibleLine(line_id="1", returnable_quantity=1, final_sale=False)]
    window = return_eligibility(end_of_time, unit, now=utcnow(), window_days=30)
    assert (window.eligible, iso(window.window_ends_at)[:10]) == (True, "9999-12-31")

    no_tracebacks(caplog)


@pytest.mark.parametrize("quantity", [True, "2", 2.0, "1e3"])
async def test_a_quantity_is_a_json_integer(gw: Gateway, quantity: object) -> None:
    body = sale(sale_id="S-Q")
    body["lines"][0]["quantity"] = quantity
    status, problem, _ = await gw.call("POST", "/v1/sales", body)
    assert (status, fields(problem)) == (422, {"lines[0].quantity"})
    await gw.call("POST", "/v1/sales", sale(sale_id="S-Q1"))
    refund = {"sale_id": "S-Q1", "lines": [{"line_id": "1", "quantity": quantity}]}
    status, problem, _ = await gw.call("POST", "/v1/refunds", refund, key="q")
    assert (status, fields(problem)) == (422, {"lines[0].quantity"})


async def test_non_utf8_headers_and_odd_token_bodies(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    end = b"Host: gw\r\nConnection: close\r\nContent-Length: 0\r\n"
    status, headers, body = await raw_request(
        gw, b"GET /v1/sales/x HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\xc3\r\n" + end
    )
    assert status == 401
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["type"].endswith("/unauthorized")

    form = b"grant_type=client_credentials"
    status, headers, body = await raw_request(
        gw,
        b"POST /oauth/token HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
        b"Authorization: Basic \xff\xfe==\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(form)}\r\n".encode(),
        form,
    )
    assert (status, json.loads(body)["error"]) == (401, "invalid_client")

    token = await gw.token()
    key_head = (
        b"POST /v1/refunds HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + b"Idempotency-Key: k\xff\xfe\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    )
    status, headers, body = await raw_request(gw, key_head, b"{}")
    assert (status, json.loads(body)["errors"][0]["field"]) == (422, "Idempotency-Key")

    cid, secret = await gw.client("register", "odd-bodies")
    url = f"{gw.base}/oauth/token"
    basic = {"Authorization": aiohttp.encode_basic_auth(cid, secret)}
    multipart = aiohttp.FormData()
    multipart.add_field("grant_type", "client_credentials")
    multipart.add_field("file", b"\x00\xff", filename="x.bin")
    odd: list[tuple[Any, dict[str, str]]] = [
        (multipart, {}),
        (b"grant_type=\xff\xfe", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"grant_type=%ff%fe", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"grant_type=a&grant_type=b", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b'{"grant_type": "client_credentials"}', {"Content-Type": "application/json"}),
    ]
    for data, extra in odd:
        async with gw.http.post(url, data=data, headers={**basic, **extra}) as r:
            answer = await r.json()
            assert (r.status, answer["error"]) == (400, "invalid_request"), data
            assert r.headers["Cache-Control"] == "no-store"
    no_tracebacks(caplog)


# ---- PIN guesses ---------------------------------------------------------------------------


async def test_parallel_wrong_pins_cannot_exceed_the_limit(gw: Gateway) -> None:
    await gw.manager("m-17", pin="482913")
    limit = gw.ctx.settings.managers.max_pin_failures

    async def guess(i: int) -> tuple[int, str]:
        body = {
            "sale_id": None,
            "kind": "goodwill",
            "amount": "5.00",
            "currency": "USD",
            "reason": "sorry",
            "approval": {"manager_id": "m-17", "pin": f"{100000 + i}"},
        }
        status, problem, _ = await gw.call("POST", "/v1/refunds", body, key=f"guess-{i}")
        return status, slug(problem)

    await gw.token()
    answers = await asyncio.gather(*(guess(i) for i in range(3 * limit)))
    assert answers.count((403, "approval-required")) == limit
    assert answers.count((429, "approval-locked")) == 2 * limit
    db = sqlite3.connect(gw.ledger.path)
    (failures,) = db.execute(
        "SELECT count(*) FROM audit_log WHERE action = 'approval.pin_failed'"
    ).fetchone()
    (locked,) = db.execute("SELECT locked_until FROM managers WHERE manager_id='m-17'").fetchone()
    assert failures == limit
    assert locked is not None
    assert len(gw.ctx.pin_locks) == 0, "no lock is kept for a manager nobody is checking"


async def test_an_unknown_manager_costs_a_full_pin_check(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert argon2.extract_parameters(pin_check.UNKNOWN_MANAGER_HASH) == (
        argon2.extract_parameters(people.hash_pin("482913"))
    ), "the stand-in hash costs what a real PIN hash costs"
    verified: list[str] = []
    real = people.pin_matches

    def spy(pin: str, stored: str) -> bool:
        verified.append(stored)
        return real(pin, stored)

    monkeypatch.setattr(people, "pin_matches", spy)
    body = {
        "sale_id": None,
        "kind": "goodwill",
        "amount": "5.00",
        "currency": "USD",
        "reason": "sorry",
        "approval": {"manager_id": "m-nobody", "pin": "482913"},
    }
    status, problem, _ = await gw.call("POST", "/v1/refunds", body, key="nobody")
    assert (status, fields(problem)) == (403, {"approval.pin"})
    assert verified == [pin_check.UNKNOWN_MANAGER_HASH]
