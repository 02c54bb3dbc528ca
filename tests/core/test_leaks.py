"""After shutdown, file descriptors and tasks are back where they started."""

from __future__ import annotations

import asyncio
import os

import aiohttp

from edge.api.auth import Authenticator, load_signing_key
from edge.api.context import ApiContext, StandaloneLink
from edge.api.metrics import ApiMetrics
from edge.api.server import LanServer
from edge.bus import EventBus
from edge.ledger.ledger import Ledger
from edge.ledger.outbox import Origin
from tests.core.conftest import make_settings


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def test_fds_and_tasks_return_to_baseline(tmp_path) -> None:
    settings = make_settings(tmp_path)
    fds_before = open_fds()
    tasks_before = asyncio.all_tasks()
    for _ in range(3):
        bus = EventBus()
        origin = Origin(settings.store_id, settings.gateway_id)
        async with Ledger(settings.db_path, bus, origin) as ledger:
            ctx = ApiContext(
                settings,
                ledger,
                Authenticator(ledger, load_signing_key(settings.data_dir), 60),
                bus,
                StandaloneLink(),
                ApiMetrics(),
            )
            async with (
                LanServer(ctx, "127.0.0.1", 0) as server,
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{server.port}/readyz") as r,
            ):
                assert r.status == 200
    assert asyncio.all_tasks() == tasks_before
    assert open_fds() - fds_before == set()
