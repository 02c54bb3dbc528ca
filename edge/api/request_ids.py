"""Every LAN API request has an id: the register's own `X-Request-Id` when it sends a usable
one, else a new one. It is answered in the `X-Request-Id` header and in problem bodies, and
every record logged while the request is handled names it (edge/logs.py), so store IT can
find a register's failed request in the journal by the id the register shows.

Each answered request is logged once (`log_answer`, called by the API's measuring
middleware, which times it anyway), by route template rather than by path (a path holds
sale ids and Return IDs a register chose): writes and refusals at INFO, successful reads at
DEBUG.
"""

from __future__ import annotations

import logging

from aiohttp import web

from edge import logs
from edge.api.routes import Handler

HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})

log = logging.getLogger("edge.api.requests")


def request_id_of(request: web.Request) -> str | None:
    """The id `request_ids` gave this request, if it got that far."""
    return request.get(REQUEST_ID)


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = logs.accepted_request_id(request.headers.get(HEADER)) or logs.new_request_id()
    request[REQUEST_ID] = request_id
    with logs.request_scope(request_id):
        return await handler(request)


def log_answer(method: str, route: str | None, status: int, elapsed_s: float) -> None:
    """The request's one log line, inside its scope (so it carries the request id)."""
    quiet = method in _READS and status < 400
    log.log(
        logging.DEBUG if quiet else logging.INFO,
        "%s %s: %d in %.1f ms",
        method,
        "(no route)" if route is None else route,
        status,
        elapsed_s * 1000,
    )


async def answer_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the id goes out on every response, a WebSocket's too."""
    request_id = request_id_of(request)
    if request_id is not None:
        response.headers[HEADER] = request_id
