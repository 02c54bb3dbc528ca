"""OAuth client credentials, roles, revocation, body limit, storage faults, OpenAPI."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from typing import Any

import aiohttp
import jwt

from edge.contract.timefmt import utcnow
from edge.ledger import people
from tests.core.conftest import Gateway, sale


async def test_token_endpoint_follows_rfc_6749(gw: Gateway) -> None:
    cid, secret = await gw.client("register")
    url = f"{gw.base}/oauth/token"
    basic = {"Authorization": aiohttp.encode_basic_auth(cid, secret)}
    async with gw.http.post(url, data={"grant_type": "client_credentials"}, headers=basic) as r:
        token = await r.json()
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-store"
    assert (token["token_type"], token["scope"], token["expires_in"]) == (
        "Bearer",
        "register",
        3600,
    )
    bad = {"Authorization": aiohttp.encode_basic_auth(cid, "wrong")}
    async with gw.http.post(url, data={"grant_type": "client_credentials"}, headers=bad) as r:
        assert (r.status, (await r.json())["error"]) == (401, "invalid_client")
    async with gw.http.post(url, data={"grant_type": "password"}, headers=basic) as r:
        assert (r.status, (await r.json())["error"]) == (400, "unsupported_grant_type")


async def test_bearer_required_and_roles_enforced(gw: Gateway) -> None:
    async with gw.http.get(f"{gw.base}/v1/sales/x") as r:
        problem = await r.json(content_type=None)
        assert r.status == 401
        assert problem["type"].endswith("/unauthorized")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    headers = {"Authorization": "Bearer not-a-token"}
    async with gw.http.get(f"{gw.base}/v1/sales/x", headers=headers) as r:
        assert r.status == 401
    status, problem, _ = await gw.call("POST", "/v1/sales", sale(), role="monitor")
    assert (status, problem["type"].rsplit("/", 1)[1]) == (403, "forbidden")
    status, _, _ = await gw.call("GET", "/v1/sales/x", role="monitor")
    assert status == 404, "monitors may read"


async def test_revoked_client_is_refused(gw: Gateway) -> None:
    await gw.token("register")
    assert (await gw.call("GET", "/v1/sales/x"))[0] == 404  # its token is now remembered
    auth = gw.ctx.auth
    auth._cache.clear()  # the cache would refuse it within CLIENT_CACHE_S anyway
    cid = next(iter(c for c in await gw.ledger.read(people.list_clients)))["client_id"]
    await gw.ledger.write(lambda conn: people.revoke_client(conn, cid, utcnow()))
    status, problem, _ = await gw.call("GET", "/v1/sales/x")
    assert status == 401
    assert "revoked" in problem["detail"]


async def test_a_token_is_verified_once_until_it_expires(gw: Gateway, monkeypatch) -> None:
    """A register's token is decoded on its first request; the next ones are served from
    what that check found, until the token's `exp`. Revocation is still seen on each."""
    decoded: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        decoded.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    token = await gw.token("register")
    for _ in range(3):
        assert (await gw.call("GET", "/v1/sales/x"))[0] == 404
    assert decoded == [token]
    auth = gw.ctx.auth
    claims = real_decode(token, options={"verify_signature": False})
    remembered = auth._tokens[token]
    assert remembered.expires_at == claims["exp"]
    # Once past its `exp` (as this one is made to be), the token is checked again.
    auth._tokens[token] = dataclasses.replace(remembered, expires_at=time.time() - 1)
    assert (await gw.call("GET", "/v1/sales/x"))[0] == 404
    assert decoded == [token, token]
    head, _, signature = token.rpartition(".")
    forged = f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    status, problem, _ = await gw.call(
        "GET", "/v1/sales/x", headers={"Authorization": f"Bearer {forged}"}
    )
    assert (status, problem["type"].rsplit("/", 1)[1]) == (401, "unauthorized")


async def test_body_over_the_limit_is_413(gw: Gateway) -> None:
    big = sale()
    big["lines"][0]["description"] = "x" * 400
    big["lines"] = [dict(big["lines"][0], line_id=str(i)) for i in range(500)]
    status, problem, _ = await gw.call("POST", "/v1/sales", big)
    assert (status, problem["type"].rsplit("/", 1)[1]) == (413, "payload-too-large")


async def test_not_json_is_a_validation_error(gw: Gateway) -> None:
    headers = {"Authorization": f"Bearer {await gw.token()}", "Content-Type": "application/json"}
    async with gw.http.post(f"{gw.base}/v1/sales", data=b"{nope", headers=headers) as r:
        problem = await r.json(content_type=None)
    assert (r.status, problem["errors"][0]["field"]) == (422, "(body)")


async def test_full_disk_is_storage_unavailable_and_nothing_half_written(gw: Gateway) -> None:
    await gw.call("POST", "/v1/sales", sale())

    def fill(conn: sqlite3.Connection) -> None:
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages}")

    await gw.ledger.write(fill)
    body = sale(sale_id="S-FULL")
    body["lines"] = [
        dict(body["lines"][0], line_id=str(i), description="y" * 400) for i in range(60)
    ]
    total = 60 * (2 * 1999 - 400 + 320) - 500  # minor units: 60 lines less the order discount
    body["tenders"][0]["amount"] = f"{total // 100}.{total % 100:02d}"
    status, problem, headers = await gw.call("POST", "/v1/sales", body)
    assert (status, problem["type"].rsplit("/", 1)[1]) == (503, "storage-unavailable")
    assert headers["Retry-After"] == "5"
    db = sqlite3.connect(gw.ledger.path)
    assert db.execute("SELECT count(*) FROM sale_lines WHERE sale_id='S-FULL'").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (1,)
    await gw.ledger.write(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
    status, _, _ = await gw.call("POST", "/v1/sales", body)
    assert status == 201, "the gateway recovers once space is back"


async def test_openapi_is_generated_from_the_models(gw: Gateway) -> None:
    async with gw.http.get(f"{gw.base}/openapi.json") as r:
        doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    assert {
        "/v1/sales",
        "/v1/refunds",
        "/v1/refunds/{return_id}",
        "/v1/returns/lookup",
        "/oauth/token",
    } <= set(doc["paths"])
    post = doc["paths"]["/v1/refunds"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("RefundIn")
    assert "quantity-exceeds-returnable" in post["responses"]["409"]["description"]
    created = post["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["$ref"].endswith("/RefundView")  # the class the handler serialises


async def test_ops_endpoints(gw: Gateway) -> None:
    async with gw.http.get(f"{gw.base}/healthz") as r:
        assert (r.status, (await r.json())["status"]) == (200, "ok")
    async with gw.http.get(f"{gw.base}/readyz") as r:
        ready = await r.json()
        assert r.status == 200
    assert ready["database"]["ok"] is True
    assert ready["hq_link"]["state"] == "online"
    await gw.call("POST", "/v1/sales", sale())
    async with gw.http.get(f"{gw.base}/metrics") as r:
        text = await r.text()
    assert 'edge_http_requests_total{route="/v1/sales",status="201"} 1.0' in text
    async with gw.http.get(f"{gw.base}/") as r:
        assert "Edge gateway" in await r.text()
