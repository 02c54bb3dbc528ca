"""`GET /v1/events?lane=&after=`: live lane events over a WebSocket.

Messages are the contract's `scan`, `device.status` and `refund.updated`, plus
`approval.granted` for badge approvals, each with an increasing `id`. A register that
reconnects with `?after=<last id>` within the replay window gets what it missed; what was
made on its lane while no register of the lane was connected it gets even without `after`
(see `edge.lanes.hub`). A client that cannot keep up is closed with 1013 (try again later)
and reconnects with `after`.

A lane-bound client (`clients add --lane`) subscribes to its own lane: without `lane` it
gets that lane, and asking for another lane is `forbidden`.

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

from edge.api import examples
from edge.api.problems import ProblemError, log_internal_error
from edge.api.routes import READERS, WRITERS, Param, Route
from edge.lanes.hub import LaneHub
from edge.lanes.subscription import Subscription

log = logging.getLogger(__name__)


class Caller(Protocol):
    """What the route needs to know about the authenticated client."""

    @property
    def client_id(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def lane(self) -> str | None: ...


Authorize = Callable[[web.Request, frozenset[str]], Awaitable[Caller]]
HEARTBEAT_S = 20.0


def _after(request: web.Request) -> int | None:
    raw = request.query.get("after")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20):  # "²" and 10^5000 too
        raise ProblemError(
            "validation-failed",
            "after must be the id of the last event received",
            errors=[{"field": "after", "message": "not a non-negative integer"}],
        )
    return int(raw)


def _lane(request: web.Request, caller: Caller) -> str | None:
    """The lane to subscribe to: the one asked for, which a lane-bound client cannot leave."""
    asked = request.query.get("lane") or None
    if caller.lane is None:
        return asked
    if asked is None or asked == caller.lane:
        return caller.lane
    raise ProblemError(
        "forbidden",
        f"this client is bound to lane {caller.lane} and hears only that lane",
        errors=[{"field": "lane", "message": "not this client's lane"}],
    )


class EventsApi:
    """The WebSocket route; `authorize` is the API's bearer-token and role check."""

    def __init__(
        self,
        hub: LaneHub,
        authorize: Authorize,
        *,
        max_per_client: int = 8,
        failed: Callable[[], None] = lambda: None,
    ) -> None:
        """`failed`: counts a subscription that ended on an unexpected exception after the
        upgrade, where no problem document can be sent any more (the gateway's metrics)."""
        self._hub = hub
        self._authorize = authorize
        self._failed = failed
        # Open subscriptions per client: one client cannot hold every connection.
        self._max_per_client = max_per_client
        self._open: dict[str, int] = {}

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/v1/events",
                self.events,
                "Live lane events (WebSocket): scan, device.status, approval.granted,"
                " refund.updated",
                READERS,
                status=101,
                problems=(
                    "unauthorized",
                    "forbidden",
                    "validation-failed",
                    "bad-request",
                    "too-many-subscribers",
                ),
                tags=("events",),
                query=(
                    Param("lane", "the lane to hear; a lane-bound client hears its own"),
                    Param(
                        "after",
                        "the id of the last event received: what followed it is replayed",
                        pattern=r"^[0-9]{0,20}$",
                    ),
                ),
                example=examples.EVENTS,
            )
        ]

    async def events(self, request: web.Request) -> web.StreamResponse:
        caller = await self._authorize(request, READERS)
        lane = _lane(request, caller)
        after = _after(request)
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
        if not ws.can_prepare(request).ok:
            raise ProblemError(
                "bad-request",
                "GET /v1/events is a WebSocket: send Connection: Upgrade and Upgrade: websocket",
            )
        client_id = caller.client_id
        if self._open.get(client_id, 0) >= self._max_per_client:
            raise ProblemError(
                "too-many-subscribers",
                f"this client already holds {self._max_per_client} event subscriptions;"
                " close one first",
                headers={"Retry-After": "5"},
            )
        self._open[client_id] = self._open.get(client_id, 0) + 1
        try:
            sub = self._hub.attach(lane, after, register=caller.role in WRITERS)
            try:
                await ws.prepare(request)
                await self._serve(request, ws, sub, lane or "*")
            finally:
                sub.close()
        finally:
            self._open[client_id] -= 1
            if not self._open[client_id]:
                del self._open[client_id]
        return ws

    async def _serve(
        self, request: web.Request, ws: web.WebSocketResponse, sub: Subscription, name: str
    ) -> None:
        sender = asyncio.create_task(self._send(ws, sub), name=f"events-ws-send:{name}")
        listener = asyncio.create_task(self._until_client_closes(ws), name=f"events-ws-recv:{name}")
        try:
            await asyncio.wait({sender, listener}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sub.close()
            for task in (sender, listener):
                task.cancel()
            outcomes = await asyncio.gather(sender, listener, return_exceptions=True)
        failure = next((o for o in outcomes if _unexpected(o)), None)
        if failure is not None:  # past the upgrade: a close code, not a problem document
            self._failed()
            request_id = log_internal_error(request, failure)
            await ws.close(
                code=WSCloseCode.INTERNAL_ERROR,
                message=f"internal error (request id {request_id})".encode(),
            )
        elif sub.dropped:
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


def _unexpected(outcome: object) -> bool:
    """A task outcome that is a bug, not the client leaving or the gateway stopping."""
    return isinstance(outcome, BaseException) and not isinstance(
        outcome, asyncio.CancelledError | ConnectionError
    )
