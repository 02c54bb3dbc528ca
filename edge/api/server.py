"""The aiohttp application and its listener, as one async context manager.

On exit the listener stops accepting, in-flight requests get `shutdown_grace_s` to finish,
and only then does the composition root close the ledger.

Slow or idle clients cannot hold a connection for ever: aiohttp's keep-alive timer, which
starts when a connection opens and again after each response and is not moved by partial
data, closes a connection that has not sent a whole request head within
`header_timeout_s`; a body must arrive within `body_timeout_s` (else 408, see
`edge.api.body`). What aiohttp logs about malformed requests is one line, never a
traceback.
"""

from __future__ import annotations

import logging
import ssl
import time
from types import TracebackType

from aiohttp import web

from edge.api.body import BODY_TIMEOUT
from edge.api.context import ApiContext
from edge.api.openapi import build_openapi
from edge.api.ops import OpsApi
from edge.api.problems import (
    INTERNAL_ERROR_STATUS,
    MEDIA_TYPE,
    Handler,
    problem_middleware,
    safe_text,
)
from edge.api.reconciliation import ReconciliationApi
from edge.api.refunds import RefundsApi
from edge.api.request_ids import answer_request_id, log_answer, request_ids
from edge.api.routes import Route
from edge.api.sales import SalesApi

log = logging.getLogger(__name__)
# aiohttp's connection handler logs here: malformed requests and broken connections.
http_log = logging.getLogger(__name__ + ".http")


class _OneLine(logging.Filter):
    """A malformed request is the client's fault: one line with what was wrong, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {safe_text(str(exc))}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


http_log.addFilter(_OneLine())


def build_routes(ctx: ApiContext, extra: list[Route] | None = None) -> list[Route]:
    ops = OpsApi(ctx)
    routes = (
        SalesApi(ctx).routes()
        + RefundsApi(ctx).routes()
        + ReconciliationApi(ctx).routes()
        + (extra or [])
        + ops.routes()
    )
    ops.openapi = build_openapi(routes)
    return routes


def build_app(ctx: ApiContext, extra: list[Route] | None = None) -> web.Application:
    routes = build_routes(ctx, extra)

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        response = await handler(request)
        elapsed_s = time.perf_counter() - started
        log_answer(request.method, None if route is None else name, response.status, elapsed_s)
        metrics = ctx.metrics
        metrics.child(metrics.latency, name).observe(elapsed_s)
        metrics.child(metrics.requests, name, str(response.status)).inc()
        metrics.outcome(request.method, name, response)  # refunds and sales by outcome
        if response.status >= 400 and response.content_type == MEDIA_TYPE:
            ctx.metrics.refusals.labels(str(response.status)).inc()
            if response.status == INTERNAL_ERROR_STATUS:  # the catch-all in problem_middleware
                ctx.metrics.internal_errors.labels(name).inc()
        return response

    app = web.Application(
        client_max_size=ctx.settings.lan.max_body_bytes,
        middlewares=[request_ids, measure, problem_middleware],
    )
    app.on_response_prepare.append(answer_request_id)
    app[BODY_TIMEOUT] = ctx.settings.lan.body_timeout_s
    app.router.add_post("/oauth/token", ctx.auth.token_endpoint)
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
    return app


class LanServer:
    """The LAN listener: HTTPS when given an `ssl_context` (see `edge.api.tls`)."""

    def __init__(
        self,
        ctx: ApiContext,
        host: str,
        port: int,
        extra: list[Route] | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._app = build_app(ctx, extra)
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._grace = ctx.settings.lan.shutdown_grace_s
        self._header_timeout = ctx.settings.lan.header_timeout_s
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def __aenter__(self) -> LanServer:
        self._runner = web.AppRunner(
            self._app,
            access_log=None,
            shutdown_timeout=self._grace,
            handle_signals=False,
            logger=http_log,
            keepalive_timeout=self._header_timeout,
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self._host,
            self._port,
            reuse_address=True,
            ssl_context=self._ssl_context,
        )
        await site.start()
        addresses = self._runner.addresses  # the bound port matters when configured as 0
        self.port = int(addresses[0][1]) if addresses else self._port
        log.info("LAN API listening on %s://%s:%s", self.scheme, self._host, self.port)
        return self

    @property
    def scheme(self) -> str:
        return "http" if self._ssl_context is None else "https"

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
