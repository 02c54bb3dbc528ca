"""Operations endpoints for store IT: liveness, readiness, metrics, OpenAPI, status page.

/readyz, the status page and /metrics show one set of facts, gathered per request by
`edge.api.status_view` from the ledger's own status functions (the same ones HQ's health
message reads), never from SQL written here, and judged into one verdict by
`edge.api.verdict`; the page is rendered by `edge.api.status_page` and the scrape-time
gauges by `edge.api.gauges`.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge import __version__
from edge.api.context import ApiContext
from edge.api.gauges import Scrape
from edge.api.routes import Param, Route
from edge.api.status_page import REFRESH_MAX_S, REFRESH_MIN_S, REFRESH_S, refresh_seconds, render
from edge.api.status_view import Facts, StatusView
from edge.api.verdict import Verdict, judge
from edge.contract.timefmt import iso

JSON = "application/json"


class OpsApi:
    def __init__(self, ctx: ApiContext, openapi: dict[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.openapi = openapi or {}
        self.view = StatusView(ctx)

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/healthz", self.healthz, "Alive (no authentication)", media=JSON),
            Route(
                "GET",
                "/readyz",
                self.readyz,
                "Ready: database writable; the verdict, HQ link, outbox and device states",
                media=JSON,
                also=((503, "not ready: the ledger cannot write (same body as 200)"),),
            ),
            Route("GET", "/metrics", self.metrics, "Prometheus metrics", media="text/plain"),
            Route(
                "GET", "/openapi.json", self.openapi_json, "This API's OpenAPI document", media=JSON
            ),
            Route(
                "GET",
                "/",
                self.status_page,
                "Status page for store IT (reloads itself)",
                media="text/html",
                problems=("validation-failed",),
                query=(
                    Param(
                        "refresh",
                        f"seconds between reloads, {REFRESH_MIN_S}-{REFRESH_MAX_S}"
                        f" (default {REFRESH_S})",
                        pattern="^[0-9]{1,6}$",
                    ),
                ),
            ),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": __version__})

    async def readyz(self, request: web.Request) -> web.Response:
        facts = await self.view.gather("ready")
        body = _readyz_body(facts, judge(facts))
        return web.json_response(body, status=200 if facts.ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        facts = await self.view.gather("metrics")
        body = generate_latest(Scrape(self.ctx.metrics.registry, facts))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi_json(self, request: web.Request) -> web.Response:
        return web.json_response(self.openapi)

    async def status_page(self, request: web.Request) -> web.Response:
        refresh_s = refresh_seconds(request.query.get("refresh"))
        facts = await self.view.gather("page")
        nonce = secrets.token_urlsafe(16)
        page = render(facts, judge(facts), refresh_s=refresh_s, nonce=nonce)
        return web.Response(text=page, content_type="text/html", headers=_page_headers(nonce))


def _page_headers(nonce: str) -> dict[str, str]:
    """The page runs no script and loads nothing: only its own inline style is allowed."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; base-uri 'none';"
            " form-action 'none'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _readyz_body(facts: Facts, verdict: Verdict) -> dict[str, Any]:
    """/readyz's JSON: the fields it always had, plus the verdict and the link's times."""
    link = facts.link
    stats = None if facts.ledger is None else facts.ledger.outbox
    return {
        "ready": facts.ready,
        "version": facts.version,
        "store_id": facts.store_id,
        "gateway_id": facts.gateway_id,
        "uptime_s": int(facts.uptime_s),
        "database": {"ok": facts.writable, "detail": facts.database_detail},
        "hq_link": {"online": facts.link.online, "state": facts.link.state},
        # as HQ's health message names it; and when the link last went online or offline
        "last_hq_ack_at": None if link.last_ack_at is None else iso(link.last_ack_at),
        "hq_link_since": None if link.since is None else iso(link.since),
        "outbox": None
        if stats is None
        else {
            "pending": stats.pending,
            "oldest_pending_at": stats.oldest_pending_at,
            "last_seq": stats.last_seq,
            "last_acked_at": stats.last_acked_at,
            "refunds_queued": stats.refunds_queued,
        },
        "refunds_today": None if facts.ledger is None else facts.ledger.refunds_today,
        "disk_free_bytes": facts.disk.free,
        "verdict": verdict.as_json(),
        **facts.checks,
    }
