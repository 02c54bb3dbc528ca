"""A real LAN API over a real SQLite ledger for the reconciliation and KPI tests, built by
`tests/core/conftest.py`'s `serve_lan`, with a link whose checkpoint is the real one, run on
the same ledger (as the standalone gateway runs it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from edge.api.context import HqLinkView
from edge.contract.timefmt import utcnow
from edge.domain.views import SaleView
from edge.hqlink.recon import checkpoint_once
from edge.ledger.ledger import Ledger
from edge.settings import Settings
from tests.core.conftest import Gateway, serve_lan


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
    checkpoint = CheckpointLink()
    async with serve_lan(settings, checkpoint if link is None else link) as gateway:
        checkpoint.ledger, checkpoint.settings = gateway.ledger, settings
        yield gateway
