"""The HQ service's HTTP side for operators: the fleet page, a gateway's page, their JSON,
Prometheus `/metrics` and `/healthz`.

Read only: every handler reads the in-memory `FleetView` and counters of the running
service (see `HqStats`), or, for `/recon`, reads the HQ store; nothing here writes to the
store or the broker. Served on
loopback by default; put a reverse proxy with authentication in front to expose it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime
from functools import partial
from types import TracebackType
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge.contract.timefmt import iso
from edge.hq.fleet import HISTORY_MAX
from edge.hq.fleet_page import (
    FILTERS,
    SORT_KEYS,
    render_fleet,
    render_gateway,
    render_missing,
    render_recon,
)
from edge.hq.metrics import HqStats, exposition, hq_registry
from edge.hq.recon.reports import recon_view
from edge.hq.service import HqService
from edge.hq.store import HqStoreError

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 2.0
REFRESH_S = 5.0


def stats_of(service: HqService) -> HqStats:
    """What the web side reads of a running service (its fleet view and counters)."""
    return HqStats(
        fleet=service.fleet,
        counters=service.counters,
        restarts=service.restarts,
        connected=lambda: service.client.connected,
        instance=service.settings.instance,
        recon=partial(service.store.read, recon_view),
    )


def _headers(nonce: str | None = None) -> dict[str, str]:
    """The pages run only their own inline script and style (per-response nonce) and fetch
    only from this server."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    if nonce is not None:
        headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}';"
            " connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none';"
            " frame-ancestors 'none'"
        )
    return headers


class FleetWeb:
    def __init__(self, stats: HqStats, *, refresh_s: float = REFRESH_S) -> None:
        self.stats = stats
        self.refresh_s = refresh_s
        self.registry = hq_registry(stats)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.fleet_page)
        app.router.add_get("/stores/{store_id}/{gateway_id}", self.gateway_page)
        app.router.add_get("/api/fleet", self.fleet_json)
        app.router.add_get("/api/fleet/{store_id}/{gateway_id}", self.gateway_json)
        app.router.add_get("/recon", self.recon_page)
        app.router.add_get("/api/recon", self.recon_json)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        return app

    def fleet_data(self, now: float) -> dict[str, Any]:
        fleet = self.stats.fleet
        return {
            "now": _iso(now),
            "instance": self.stats.instance,
            "summary": fleet.summary(),
            "gateways": fleet.rows(now),
        }

    async def fleet_page(self, request: web.Request) -> web.Response:
        query = request.query
        sort = query.get("sort", "store_id")
        direction = query.get("dir", "asc")
        state = query.get("state", "all")
        now = self.stats.clock()
        nonce = secrets.token_urlsafe(16)
        page = render_fleet(
            self.fleet_data(now),
            now=now,
            sort=sort if sort in SORT_KEYS else "store_id",
            direction=direction if direction in ("asc", "desc") else "asc",
            state=state if state in FILTERS else "all",
            refresh_s=self.refresh_s,
            nonce=nonce,
            instance=self.stats.instance,
        )
        return web.Response(text=page, content_type="text/html", headers=_headers(nonce))

    async def gateway_page(self, request: web.Request) -> web.Response:
        store_id, gateway_id = request.match_info["store_id"], request.match_info["gateway_id"]
        view = self.stats.fleet.get(store_id, gateway_id)
        nonce = secrets.token_urlsafe(16)
        if view is None:
            page = render_missing(store_id, gateway_id, nonce)
            return web.Response(
                text=page, status=404, content_type="text/html", headers=_headers(nonce)
            )
        now = self.stats.clock()
        page = render_gateway(
            view.detail(now),
            now=now,
            refresh_s=self.refresh_s,
            nonce=nonce,
            history_max=HISTORY_MAX,
        )
        return web.Response(text=page, content_type="text/html", headers=_headers(nonce))

    async def fleet_json(self, request: web.Request) -> web.Response:
        return web.json_response(self.fleet_data(self.stats.clock()), headers=_headers())

    async def gateway_json(self, request: web.Request) -> web.Response:
        store_id, gateway_id = request.match_info["store_id"], request.match_info["gateway_id"]
        view = self.stats.fleet.get(store_id, gateway_id)
        if view is None:
            return web.json_response(
                {"error": "unknown gateway", "store_id": store_id, "gateway_id": gateway_id},
                status=404,
                headers=_headers(),
            )
        return web.json_response(view.detail(self.stats.clock()), headers=_headers())

    async def _recon(self) -> dict[str, Any] | web.Response:
        """The reconciliation view from the store, or the error response to send."""
        if self.stats.recon is None:
            return web.json_response(
                {"error": "no reconciliation view here"}, status=404, headers=_headers()
            )
        try:
            return await self.stats.recon()
        except HqStoreError as exc:
            log.error("could not read the reconciliation view: %s", exc)
            return web.json_response(
                {"error": "the HQ store is unavailable"}, status=503, headers=_headers()
            )

    async def recon_page(self, request: web.Request) -> web.Response:
        """Fleet-wide open mismatches by store, kind, class and pattern (the HQ store's
        view, read per request)."""
        view = await self._recon()
        if isinstance(view, web.Response):
            return view
        nonce = secrets.token_urlsafe(16)
        page = render_recon(view, nonce=nonce, instance=self.stats.instance)
        return web.Response(text=page, content_type="text/html", headers=_headers(nonce))

    async def recon_json(self, request: web.Request) -> web.Response:
        view = await self._recon()
        if isinstance(view, web.Response):
            return view
        return web.json_response(view, headers=_headers())

    async def metrics(self, request: web.Request) -> web.Response:
        """Values read on the loop; the text (most of a 10,000-gateway scrape's time) is
        written in a thread so the service's loops are not held up."""
        body = await asyncio.to_thread(generate_latest, exposition(self.registry))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        """Alive (always 200 while the process serves), with the broker link for a person."""
        return web.json_response(
            {
                "status": "ok",
                "instance": self.stats.instance,
                "mqtt": "connected" if self.stats.connected() else "disconnected",
                "gateways": len(self.stats.fleet),
            },
            headers=_headers(),
        )


class FleetServer:
    """The HTTP listener as a resource. A port already taken is logged and the service runs
    on without its page (several instances on one host each need their own `--http`)."""

    def __init__(
        self, stats: HqStats, host: str, port: int, *, refresh_s: float = REFRESH_S
    ) -> None:
        self.web = FleetWeb(stats, refresh_s=refresh_s)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def listening(self) -> bool:
        return self._runner is not None

    async def __aenter__(self) -> FleetServer:
        runner = web.AppRunner(
            self.web.app(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_GRACE_S,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port, reuse_address=True).start()
        except OSError as exc:
            await runner.cleanup()
            log.error(
                "cannot serve the fleet page and /metrics on %s:%s (%s); running without them",
                self._host,
                self._port,
                exc,
            )
            return self
        self._runner = runner
        log.info("fleet page and /metrics on http://%s:%s/", self._host, self._port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE_S * 2):
                await runner.cleanup()
        except TimeoutError:
            log.warning("the HTTP listener did not stop within %.0f s", SHUTDOWN_GRACE_S * 2)


def parse_http(text: str) -> tuple[str, int] | None:
    """`--http`: `HOST:PORT`, `PORT` (on 127.0.0.1), or `0`/`off` for none."""
    value = text.strip()
    if value.lower() in ("", "0", "off", "none", "no"):
        return None
    host, _, port = value.rpartition(":")
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(f"not a TCP port: {port}")
    return (host.strip("[]") or "127.0.0.1", number)


def _iso(epoch: float) -> str:
    return iso(datetime.fromtimestamp(epoch, UTC))
