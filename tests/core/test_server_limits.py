"""What the LAN listener does with slow, idle, greedy or malformed clients, what it answers
that no handler wrote (405, 400, 500), whether /openapi.json lists every status, and who
may read the ledger and the signing key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.api.auth import Authenticator, load_signing_key
from edge.api.context import ApiContext
from edge.api.metrics import ApiMetrics
from edge.api.routes import Route
from edge.api.routes_events import EventsApi
from edge.api.server import LanServer, build_app, build_routes
from edge.bus import EventBus
from edge.lanes.hub import LaneHub
from edge.ledger.ledger import Ledger
from edge.ledger.outbox import Origin
from edge.settings import Settings
from tests.core.conftest import FixedLink, Gateway, make_settings, sale

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5
MAX_SUBSCRIBERS = 2


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    lan = {
        "port": 0,
        "bind": "127.0.0.1",
        "header_timeout_s": HEADER_TIMEOUT_S,
        "body_timeout_s": BODY_TIMEOUT_S,
        "max_subscribers_per_client": MAX_SUBSCRIBERS,
    }
    return make_settings(tmp_path, lan=lan)


def events_routes(ctx: ApiContext, hub: LaneHub) -> list[Route]:
    return EventsApi(
        hub, ctx.principal, max_per_client=ctx.settings.lan.max_subscribers_per_client
    ).routes()


@pytest.fixture
async def gw(settings: Settings, link: FixedLink) -> AsyncIterator[Gateway]:
    """The core gateway with the live events route, as the composition root builds it."""
    bus = EventBus()
    origin = Origin(settings.store_id, settings.gateway_id)
    async with Ledger(settings.db_path, bus, origin) as ledger:
        ctx = ApiContext(
            settings=settings,
            ledger=ledger,
            auth=Authenticator(ledger, load_signing_key(settings.data_dir), 3600),
            bus=bus,
            link=link,
            metrics=ApiMetrics(),
        )
        hub = LaneHub(bus, settings.lanes)
        server = LanServer(ctx, "127.0.0.1", 0, extra=events_routes(ctx, hub))
        async with server, hub, aiohttp.ClientSession() as http:
            yield Gateway(f"http://127.0.0.1:{server.port}", ctx, ledger, http)


async def connect(gw: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.base.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


# ---- slow and idle clients -----------------------------------------------------------------


async def test_a_slow_loris_is_disconnected_within_the_header_timeout(gw: Gateway) -> None:
    """Header lines trickling in forever do not keep the connection: the deadline holds."""
    reader, writer = await connect(gw)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")
    sent = 0
    async with asyncio.timeout(HEADER_TIMEOUT_S + 5):
        while True:
            try:  # wait a little for the server's close; if it has not come, trickle on
                data = await asyncio.wait_for(reader.read(1024), HEADER_TIMEOUT_S / 5)
            except TimeoutError:
                try:
                    writer.write(f"X-Slow-{sent}: still typing\r\n".encode())
                    await writer.drain()
                except ConnectionError:
                    break
                sent += 1
                continue
            assert data == b"", "the request head never completed, so nothing is answered"
            break
    elapsed = time.monotonic() - started
    writer.close()
    assert sent >= 3, "the client kept sending header bytes"
    assert HEADER_TIMEOUT_S * 0.8 <= elapsed < HEADER_TIMEOUT_S + 5


async def test_an_idle_connection_is_closed(gw: Gateway) -> None:
    reader, writer = await connect(gw)
    async with asyncio.timeout(HEADER_TIMEOUT_S + 5):
        assert await reader.read() == b""
    writer.close()


async def test_a_slow_body_gets_408(gw: Gateway) -> None:
    token = await gw.token()
    reader, writer = await connect(gw)
    writer.write(
        b"POST /v1/sales HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + b'Content-Length: 1000\r\n\r\n{"sale_id": '
    )
    async with asyncio.timeout(BODY_TIMEOUT_S + 5):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        problem = json.loads(await reader.readexactly(length))
    writer.close()
    assert head.startswith(b"HTTP/1.1 408")
    assert b"application/problem+json" in head
    assert problem["type"].endswith("/request-timeout")


# ---- WebSocket subscribers -----------------------------------------------------------------


def upgrade_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }


async def test_events_need_an_upgrade_and_are_capped_per_client(gw: Gateway) -> None:
    token = await gw.token("register")
    url = f"{gw.base}/v1/events?lane=lane-1"
    async with gw.http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
        problem = await r.json(content_type=None)
        assert (r.status, r.content_type) == (400, "application/problem+json")
        assert problem["type"].endswith("/bad-request")

    for after in ("%C2%B2", "9" * 5000):  # a superscript two; an id past int's digit limit
        async with gw.http.get(f"{url}&after={after}", headers=upgrade_headers(token)) as r:
            problem = await r.json(content_type=None)
            assert (r.status, problem["errors"][0]["field"]) == (422, "after")

    held = [
        await gw.http.ws_connect(url, headers={"Authorization": f"Bearer {token}"})
        for _ in range(MAX_SUBSCRIBERS)
    ]
    async with gw.http.get(url, headers=upgrade_headers(token)) as r:
        problem = await r.json(content_type=None)
        assert (r.status, r.content_type) == (429, "application/problem+json")
        assert problem["type"].endswith("/too-many-subscribers")
        assert r.headers["Retry-After"]
    other = await gw.http.ws_connect(
        url, headers={"Authorization": f"Bearer {await gw.token('monitor')}"}
    )
    for ws in [*held, other]:
        await ws.close()


# ---- answers no handler wrote ----------------------------------------------------------------


async def test_405_carries_allow_and_is_a_problem(gw: Gateway) -> None:
    for method, path, allowed in (
        ("PUT", "/v1/sales", "POST"),
        ("DELETE", "/v1/refunds/x", "GET"),
        ("GET", "/oauth/token", "POST"),
    ):
        async with gw.http.request(method, f"{gw.base}{path}") as r:
            problem = await r.json(content_type=None)
            assert (r.status, r.content_type) == (405, "application/problem+json"), path
            assert allowed in r.headers["Allow"]
            assert problem["type"].endswith("/method-not-allowed")


async def test_an_unexpected_exception_is_one_logged_internal_error(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pan = " ".join(["4111"] + ["1111"] * 3)

    async def broken(sale_id: str) -> dict[str, Any] | None:
        raise RuntimeError(f"bug while reading {pan} for {sale_id}")

    monkeypatch.setattr(gw.ledger, "sale", broken)
    caplog.set_level(logging.DEBUG)
    status, problem, headers = await gw.call("GET", "/v1/sales/S-1")
    assert (status, headers["Content-Type"]) == (500, "application/problem+json; charset=utf-8")
    assert problem["type"].endswith("/internal-error")
    request_id = problem["request_id"]
    assert headers["X-Request-Id"] == request_id
    named = [r for r in caplog.records if request_id in r.getMessage()]
    assert len(named) == 1
    assert "RuntimeError" in named[0].getMessage()
    assert "4111" not in caplog.text, "an exception's text is withheld if it may hold a PAN"
    assert not [r for r in caplog.records if r.name.startswith("aiohttp")]


async def test_a_malformed_request_is_logged_on_one_line(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reader, writer = await connect(gw)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nNo colon in this header\r\n\r\n")
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request")
    logged = [r for r in caplog.records if r.name == "edge.api.server.http"]
    assert logged
    for record in logged:
        assert record.exc_info is None
        assert "\n" not in record.getMessage()
    assert "Traceback" not in caplog.text


# ---- /openapi.json lists every status ------------------------------------------------------


async def test_openapi_lists_every_status_each_operation_answers(gw: Gateway) -> None:
    """Walk the route table, provoke what each operation can answer, and look it up."""
    async with gw.http.get(f"{gw.base}/openapi.json") as r:
        doc = await r.json()
    hub = LaneHub(gw.ctx.bus, gw.ctx.settings.lanes)
    routes = build_routes(gw.ctx, events_routes(gw.ctx, hub))
    served = {
        (route.method, route.resource.canonical)
        for route in build_app(gw.ctx, events_routes(gw.ctx, hub)).router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented

    tokens = {role: await gw.token(role) for role in ("admin", "monitor")}
    bodies: list[bytes | None] = [None, b"{nope", b"{}", json.dumps(sale()).encode()]
    seen: set[tuple[str, str, int]] = set()
    for route in [*routes, Route("POST", "/oauth/token", gw.ctx.auth.token_endpoint, "")]:
        url = gw.base + route.path.replace("{sale_id}", "nope").replace("{return_id}", "nope")
        for auth in (None, *tokens.values()):
            for body in bodies if route.method == "POST" else [None]:
                headers = {"Content-Type": "application/json", "Idempotency-Key": "walk"}
                if auth:
                    headers["Authorization"] = f"Bearer {auth}"
                async with gw.http.request(route.method, url, data=body, headers=headers) as r:
                    seen.add((route.method, route.path, r.status))
                    if r.status >= 400 and route.path != "/oauth/token":
                        assert r.content_type == "application/problem+json", (route.path, r)
    for method, path, status in sorted(seen):
        responses = doc["paths"][path][method.lower()]["responses"]
        assert str(status) in responses, f"{method} {path} answers {status}, undocumented"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "500" in op["responses"], (method, path)
            for status, response in op["responses"].items():
                content = response.get("content", {})
                if int(status) >= 400 and "application/json" not in content:  # /readyz, token
                    assert "application/problem+json" in content, (path, status)


# ---- who may read the ledger and the key ----------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_ledger_and_key_are_owner_only(gw: Gateway) -> None:
    status, _, _ = await gw.call("POST", "/v1/sales", sale())
    assert status == 201
    db = gw.ledger.path
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    files.append(db.parent / "token-signing.key")
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


async def test_modes_of_existing_files_are_tightened_at_start(tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite3"
    sqlite3.connect(db).close()
    key = tmp_path / "token-signing.key"
    key.write_bytes(os.urandom(32))
    for path in (db, key):
        path.chmod(0o644)
    load_signing_key(tmp_path)
    async with Ledger(db, EventBus(), Origin("0001", "gw-01")) as ledger:
        await ledger.write(lambda conn: conn.execute("SELECT 1"))
        wal = db.with_name(db.name + "-wal")
        assert (mode(db), mode(wal), mode(key)) == (0o600, 0o600, 0o600)
