"""A real LAN API server on a free port over a real SQLite file, and a client for it.

The client checks every response it receives against the server's `/openapi.json`
(`tests.openapi_check`): a test that gets an undocumented answer fails on it.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.api.auth import Authenticator, load_signing_key
from edge.api.context import ApiContext, HqLinkView
from edge.api.metrics import ApiMetrics
from edge.api.server import LanServer
from edge.bus import EventBus
from edge.contract.timefmt import utcnow
from edge.domain.errors import HqUnreachable
from edge.domain.views import SaleView
from edge.ledger import people
from edge.ledger.ledger import Ledger
from edge.ledger.outbox import Origin
from edge.settings import Settings, load_settings
from tests.openapi_check import ResponseCheck


class FixedLink:
    """The HQ link seen from the API, pinned online or offline (the MQTT link has its own tests)."""

    def __init__(self, online: bool) -> None:
        self.online = online
        self.state = "online" if online else "offline"

    async def lookup_order(self, code: str) -> SaleView | None:
        if not self.online:
            raise HqUnreachable(f"HQ cannot be asked about {code}")
        return None


SALE: dict[str, Any] = {
    "sale_id": "0042-03-20261122-0007",
    "channel": "store",
    "register_id": "lane-3",
    "occurred_at": "2026-11-22T10:15:00Z",
    "currency": "USD",
    "lines": [
        {
            "line_id": "1",
            "sku": "TSHIRT-M-BLK",
            "gtin": "09506000134352",
            "description": "T-shirt",
            "category": "apparel",
            "quantity": 2,
            "unit_price": "19.99",
            "discount": "4.00",
            "tax": "3.20",
            "final_sale": False,
        }
    ],
    "order_discount": "5.00",
    "shipping": {"amount": "0.00", "tax": "0.00"},
    "tenders": [
        {
            "tender_id": "t1",
            "type": "card",
            "amount": "34.18",
            "payment_token": "tok_9f8e",
            "auth_code": "A1B2C3",
            "card_brand": "visa",
            "last4": "4242",
        }
    ],
}


def sale(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SALE)
    body["occurred_at"] = utcnow().isoformat().replace("+00:00", "Z")
    body.update(changes)
    return body


@dataclass
class Gateway:
    base: str
    ctx: ApiContext
    ledger: Ledger
    http: aiohttp.ClientSession
    tokens: dict[str, str] = field(default_factory=dict)

    async def client(self, role: str = "register", name: str | None = None) -> tuple[str, str]:
        return await self.ledger.write(
            lambda conn: people.add_client(conn, name or role, role, utcnow())
        )

    async def token(self, role: str = "register") -> str:
        if role not in self.tokens:
            cid, secret = await self.client(role)
            async with self.http.post(
                f"{self.base}/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": aiohttp.encode_basic_auth(cid, secret)},
            ) as resp:
                assert resp.status == 200, await resp.text()
                self.tokens[role] = (await resp.json())["access_token"]
        return self.tokens[role]

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        role: str = "register",
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
        hdrs = {"Authorization": f"Bearer {await self.token(role)}", **(headers or {})}
        if key is not None:
            hdrs["Idempotency-Key"] = key
        async with self.http.request(method, f"{self.base}{path}", json=body, headers=hdrs) as r:
            data = await r.json(content_type=None) if r.content_length != 0 else None
            return r.status, data, r.headers

    async def manager(
        self, manager_id: str = "m-17", pin: str = "482913", badge: str | None = None
    ) -> None:
        pin_hash = people.hash_pin(pin)
        await self.ledger.write(
            lambda conn: people.add_manager(conn, manager_id, "Manager", pin_hash, badge, utcnow())
        )


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(
        None, data_dir=tmp_path, **{"lan": {"port": 0, "bind": "127.0.0.1"}, **overrides}
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def link() -> FixedLink:
    return FixedLink(online=True)


@asynccontextmanager
async def serve_lan(settings: Settings, link: HqLinkView) -> AsyncIterator[Gateway]:
    """The LAN API on a free loopback port over a real ledger, with an HTTP client whose
    every response is checked against /openapi.json."""
    bus = EventBus()
    async with Ledger(
        settings.db_path, bus, Origin(settings.store_id, settings.gateway_id)
    ) as ledger:
        ctx = ApiContext(
            settings=settings,
            ledger=ledger,
            auth=Authenticator(ledger, load_signing_key(settings.data_dir), 3600),
            bus=bus,
            link=link,
            metrics=ApiMetrics(),
        )
        check = ResponseCheck()
        async with (
            LanServer(ctx, "127.0.0.1", 0) as server,
            aiohttp.ClientSession(middlewares=(check,)) as http,
        ):
            base = f"http://127.0.0.1:{server.port}"
            await check.load(http, base)
            yield Gateway(base, ctx, ledger, http)


@pytest.fixture
async def gw(settings: Settings, link: FixedLink) -> AsyncIterator[Gateway]:
    async with serve_lan(settings, link) as gateway:
        yield gateway
