"""A real LAN API over a real SQLite ledger for the reconciliation and KPI tests, built as
`tests/core/conftest.py` builds it, with a link whose checkpoint is the real one, run on
the same ledger (as the standalone gateway runs it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from edge.api.auth import Authenticator, load_signing_key
from edge.api.context import ApiContext, HqLinkView
from edge.api.metrics import ApiMetrics
from edge.api.server import LanServer
from edge.bus import EventBus
from edge.contract.timefmt import utcnow
from edge.domain.views import SaleView
from edge.hqlink.recon import checkpoint_once
from edge.ledger.ledger import Ledger
from edge.ledger.outbox import Origin
from edge.settings import Settings
from tests.core.conftest import Gateway
from tests.openapi_check import ResponseCheck


class CheckpointLink:
    """The HQ link as the API sees it: online unless a test says otherwise, and the real
    checkpoint on the gateway's ledger (counted, so a test sees that it ran)."""

    def __init__(self) -> None:
        self.online = True
        self.state = "online"
        self.ledger: Ledger | None = None
        self.settings: Settings | None = None
        self.runs = 0

    async def lookup_order(self, code: str) -> SaleView | None:
        return None

    async def run_checkpoint(self) -> str:
        assert self.ledger is not None
        assert self.settings is not None
        self.runs += 1
        result = await checkpoint_once(self.ledger, self.settings.recon, utcnow())
        return result.report_id


@asynccontextmanager
async def lan_gateway(settings: Settings, link: HqLinkView | None = None) -> AsyncIterator[Gateway]:
    bus = EventBus()
    async with Ledger(
        settings.db_path, bus, Origin(settings.store_id, settings.gateway_id)
    ) as ledger:
        if link is None:
            link = CheckpointLink()
            link.ledger, link.settings = ledger, settings
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
