"""`GET /v1/events?lane=&after=`: live lane events over a WebSocket.

Messages are the contract's `scan`, `device.status` and `refund.updated`, plus
`approval.granted` for badge approvals, each with an increasing `id`. A register that
reconnects with `?after=<last id>` within the replay window gets what it missed. A client
that cannot keep up is closed with 1013 (try again later) and reconnects with `after`.

The subscription starts before the upgrade completes, so nothing published between the
client learning it is connected and the handler attaching is lost. A grant token goes only
to a lane's subscribers whose role may post refunds (register, handheld): a monitor sees
that a grant was issued, never the token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import WSCloseCode, web

from edge.api.problems import ProblemError
from edge.api.routes import READERS, WRITERS, Route
from edge.lanes.hub import LaneHub
from edge.lanes.subscription import Subscription

log = logging.getLogger(__name__)


class Caller(Protocol):
    """What the route needs to know about the authenticated client."""

    @property
    def role(self) -> str: ...


Authorize = Callable[[web.Request, frozenset[str]], Awaitable[Caller]]
HEARTBEAT_S = 20.0


def _after(request: web.Request) -> int | None:
    raw = request.query.get("after")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ProblemError(
            "validation-failed",
            "after must be the id of the last event received",
            errors=[{"field": "after", "message": "not a non-negative integer"}],
        )
    return int(raw)


class EventsApi:
    """The WebSocket route; `authorize` is the API's bearer-token and role check."""

    def __init__(self, hub: LaneHub, authorize: Authorize) -> None:
        self._hub = hub
        self._authorize = authorize

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/v1/events",
                self.events,
                "Live lane events (WebSocket): scan, device.status, approval.granted,"
                " refund.updated",
                READERS,
                problems=("unauthorized", "forbidden", "validation-failed"),
                tags=("events",),
            )
        ]

    async def events(self, request: web.Request) -> web.StreamResponse:
        caller = await self._authorize(request, READERS)
        lane = request.query.get("lane") or None
        after = _after(request)
        sub = self._hub.attach(lane, after, grants=caller.role in WRITERS)
        try:
            ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
            await ws.prepare(request)
            await self._serve(ws, sub, lane or "*")
        finally:
            sub.close()
        return ws

    async def _serve(self, ws: web.WebSocketResponse, sub: Subscription, name: str) -> None:
        sender = asyncio.create_task(self._send(ws, sub), name=f"events-ws-send:{name}")
        listener = asyncio.create_task(self._until_client_closes(ws), name=f"events-ws-recv:{name}")
        try:
            await asyncio.wait({sender, listener}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sub.close()
            for task in (sender, listener):
                task.cancel()
            await asyncio.gather(sender, listener, return_exceptions=True)
        if sub.dropped:
            log.warning("closing a slow events client (lane %s)", name)
            await ws.close(
                code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow; reconnect with ?after="
            )
        else:  # the client left, or the gateway is stopping
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway stopping")

    @staticmethod
    async def _send(ws: web.WebSocketResponse, sub: Subscription) -> None:
        async for message in sub:
            await ws.send_json(message)

    @staticmethod
    async def _until_client_closes(ws: web.WebSocketResponse) -> None:
        async for _ in ws:  # registers do not talk back; reading notices their close
            pass
