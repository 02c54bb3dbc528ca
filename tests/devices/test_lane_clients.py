"""Lane-bound clients and badge grants through the real LAN API, tokens and SQLite ledger.

A badge tap goes through `BadgeApprovals` (manager looked up in the ledger, audited) to the
lane hub and the `/v1/events` WebSocket; refunds carry the grant as the contract says, with
or without `register_id`, from clients bound to a lane or not.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from edge.api.auth import Authenticator, load_signing_key
from edge.api.context import ApiContext
from edge.api.metrics import ApiMetrics
from edge.api.routes_events import EventsApi
from edge.api.server import LanServer
from edge.bus import EventBus
from edge.contract.timefmt import utcnow
from edge.lanes.approvals import ApprovalGrants, BadgeApprovals
from edge.lanes.hub import LaneHub
from edge.ledger import people
from edge.ledger.db import apply_migrations, migrations, open_sync
from edge.ledger.ledger import Ledger
from edge.ledger.outbox import Origin
from tests.core.conftest import FixedLink, make_settings, sale
from tests.core.daemon import cli, env_for, free_port

from .conftest import WAIT_S

BADGE = "04A1B2C3D4E5F6"
SALE_ID = "0042-03-20261122-0007"
NAMES = itertools.count(1)


@dataclass
class Store:
    base: str
    http: aiohttp.ClientSession
    ledger: Ledger
    badges: BadgeApprovals
    db_path: Path

    async def token(self, role: str = "register", lane: str | None = None) -> str:
        client_id, secret = await self.ledger.write(
            lambda conn: people.add_client(conn, f"{role}-{next(NAMES)}", role, utcnow(), lane)
        )
        async with self.http.post(
            f"{self.base}/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": aiohttp.encode_basic_auth(client_id, secret)},
        ) as r:
            assert r.status == 200, await r.text()
            return str((await r.json())["access_token"])

    async def tap(self, lane: str) -> str:
        """A manager's badge on the lane's reader; the grant as the lane's register gets it."""
        event = await self.badges.tap(lane, f"{lane}-badge", BADGE)
        assert event is not None
        return event.grant

    async def refund(
        self, token: str, key: str, grant: str, register_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "sale_id": SALE_ID,
            "lines": [{"line_id": "1", "quantity": 1, "reason": "damaged", "restock": False}],
            "refund_to": "store_credit",
            "approval": {"grant": grant},
        }
        if register_id is not None:
            body["register_id"] = register_id
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        async with self.http.post(f"{self.base}/v1/refunds", json=body, headers=headers) as r:
            return r.status, await r.json(content_type=None)

    async def events(self, token: str, query: str = "") -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(
            f"{self.base}/v1/events?{query}", headers={"Authorization": f"Bearer {token}"}
        )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    settings = make_settings(tmp_path)
    bus = EventBus()
    async with Ledger(
        settings.db_path, bus, Origin(settings.store_id, settings.gateway_id)
    ) as ledger:
        grants = ApprovalGrants(bus, settings.lanes.grant_ttl_s)

        async def audit(action: str, subject: str, detail: dict[str, object]) -> None:
            await ledger.audit("badge-reader", action, subject, dict(detail))

        badges = BadgeApprovals(grants, ledger.manager_for_badge, audit)
        hub = LaneHub(bus, settings.lanes)
        ctx = ApiContext(
            settings=settings,
            ledger=ledger,
            auth=Authenticator(ledger, load_signing_key(settings.data_dir), 3600),
            bus=bus,
            link=FixedLink(online=True),
            metrics=ApiMetrics(),
            grants=grants,
        )
        events = EventsApi(hub, ctx.principal).routes()
        async with (
            LanServer(ctx, "127.0.0.1", 0, extra=events) as server,
            hub,
            aiohttp.ClientSession() as http,
        ):
            await ledger.write(
                lambda conn: people.add_manager(conn, "m-17", "Dana", None, BADGE, utcnow())
            )
            gw = Store(f"http://127.0.0.1:{server.port}", http, ledger, badges, settings.db_path)
            headers = {"Authorization": f"Bearer {await gw.token()}"}
            async with http.post(f"{gw.base}/v1/sales", json=sale(), headers=headers) as r:
                assert r.status == 201, await r.text()
            yield gw


async def next_message(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), WAIT_S)
    return message


def slug(problem: dict[str, Any]) -> str:
    return str(problem["type"]).rsplit("/", 1)[-1]


async def test_a_grant_sent_without_register_id_is_redeemed_exactly_once(store: Store) -> None:
    register = await store.token()
    grant = await store.tap("lane-3")
    status, first = await store.refund(register, "first", grant)
    assert status == 201, first
    status, again = await store.refund(register, "second", grant)
    assert (status, slug(again)) == (403, "approval-required")
    assert again["errors"] == [{"field": "approval.grant", "message": again["detail"]}]

    with sqlite3.connect(store.db_path) as db:
        refunds = db.execute("SELECT return_id, approved_by, register_id FROM returns").fetchall()
        audit = db.execute("SELECT action, subject, detail FROM audit_log ORDER BY seq").fetchall()
    assert refunds == [(first["return_id"], "m-17", None)]
    actions = [(action, subject) for action, subject, _ in audit]
    assert ("approval.grant_issued", "m-17") in actions
    created = [json.loads(d) for a, _, d in audit if a == "refund.created"]
    assert [d["approved_by"] for d in created] == ["m-17"]
    stored = b"".join(f.read_bytes() for f in store.db_path.parent.glob("ledger.sqlite3*"))
    assert grant.encode() not in stored, "a grant is a bearer token: never stored"
    assert BADGE.encode() not in stored


async def test_a_register_id_other_than_the_grants_lane_is_refused_without_using_it(
    store: Store,
) -> None:
    register = await store.token()
    grant = await store.tap("lane-3")
    status, problem = await store.refund(register, "wrong-lane", grant, register_id="lane-4")
    assert (status, slug(problem)) == (403, "approval-required")
    assert [e["field"] for e in problem["errors"]] == ["register_id"]
    status, body = await store.refund(register, "right-lane", grant, register_id="lane-3")
    assert status == 201, body


async def test_a_lane_bound_client_redeems_only_its_own_lanes_grants(store: Store) -> None:
    grant = await store.tap("lane-3")
    other_lane = await store.token(lane="lane-4")
    for key, register_id in (("bare", None), ("named", "lane-3")):
        status, problem = await store.refund(other_lane, key, grant, register_id=register_id)
        assert (status, slug(problem)) == (403, "approval-required"), key
        assert [e["field"] for e in problem["errors"]] == ["approval.grant"]
    own_lane = await store.token(lane="lane-3")
    status, body = await store.refund(own_lane, "own", grant)
    assert status == 201, body


async def test_a_lane_bound_client_subscribes_only_to_its_own_lane(store: Store) -> None:
    bound = await store.token("handheld", lane="lane-3")
    assert jwt.decode(bound, options={"verify_signature": False})["lane"] == "lane-3"
    headers = {
        "Authorization": f"Bearer {bound}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    async with store.http.get(f"{store.base}/v1/events?lane=lane-4", headers=headers) as r:
        assert (r.status, r.content_type) == (403, "application/problem+json")
        problem = await r.json()
    assert slug(problem) == "forbidden"
    assert [e["field"] for e in problem["errors"]] == ["lane"]

    monitor = await store.events(await store.token("monitor"))
    own = await store.events(bound)  # no lane: the client's own
    await store.tap("lane-4")
    assert (await next_message(monitor))["lane"] == "lane-4"
    grant = await store.tap("lane-3")
    got = await next_message(own)
    assert (got["type"], got["lane"], got["grant"]) == ("approval.granted", "lane-3", grant)
    for ws in (own, monitor):
        await ws.close()


async def test_a_badge_tapped_before_the_register_connects_reaches_it(store: Store) -> None:
    watcher = await store.events(await store.token("monitor"), "lane=lane-3")
    grant = await store.tap("lane-3")  # the register app is restarting: nobody takes it
    notice = await next_message(watcher)
    assert notice["type"] == "approval.granted"
    assert "grant" not in notice, "a monitor on the lane never gets the token"

    unbound = await store.token()
    register = await store.events(unbound, "lane=lane-3")  # no after
    held = await next_message(register)
    assert (held["id"], held["grant"]) == (notice["id"], grant)
    status, body = await store.refund(unbound, "after-reconnect", grant)
    assert status == 201, body

    second = await store.events(await store.token(lane="lane-3"))  # nothing held any more
    fresh = await store.tap("lane-3")
    assert (await next_message(second))["grant"] == fresh
    update = await next_message(register)
    assert (update["type"], update["return_id"]) == ("refund.updated", body["return_id"])
    assert (await next_message(register))["grant"] == fresh, "and nothing twice"
    for ws in (watcher, register, second):
        await ws.close()


def test_clients_add_binds_only_registers_and_handhelds_to_a_lane(tmp_path: Path) -> None:
    env = env_for(tmp_path / "data", free_port())
    added = cli(env, "clients", "add", "till-3", "--role", "register", "--lane", "lane-3", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["lane"] == "lane-3"
    handheld = cli(env, "clients", "add", "floor-3", "--role", "handheld", "--lane", "lane-3")
    assert handheld.returncode == 0, handheld.stderr
    assert "lane:          lane-3" in handheld.stdout
    for name, role, lane in (
        ("boss", "admin", "lane-3"),
        ("wall", "monitor", "lane-3"),
        ("odd", "register", "lane 3!"),
    ):
        refused = cli(env, "clients", "add", name, "--role", role, "--lane", lane)
        assert refused.returncode == 2, (role, refused.stdout)
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "Traceback" not in refused.stderr
    listed = json.loads(cli(env, "clients", "list", "--json").stdout)
    assert [(c["name"], c["lane"]) for c in listed] == [("till-3", "lane-3"), ("floor-3", "lane-3")]
    text = cli(env, "clients", "list").stdout
    assert next(line for line in text.splitlines() if "till-3" in line).split()[2] == "lane-3"


def test_clients_from_before_lanes_stay_unbound(tmp_path: Path) -> None:
    conn = open_sync(tmp_path / "ledger.sqlite3")
    for version, script in migrations():
        if version <= 2:
            conn.executescript(script)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO clients (client_id, name, role, secret_hash, created_at)"
        " VALUES ('cl_old', 'old till', 'register', 'x', '2026-11-01T00:00:00Z')"
    )
    assert apply_migrations(conn) >= 3
    client = people.get_client(conn, "cl_old")
    assert client is not None
    assert (client.role, client.lane) == ("register", None)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO clients (client_id, name, role, secret_hash, created_at, lane)"
            " VALUES ('cl_admin', 'boss', 'admin', 'x', '2026-11-01T00:00:00Z', 'lane-3')"
        )
    conn.close()
