"""Reading a request body within the listener's deadline.

A client that sends its body slowly would hold a handler and a connection for as long as
it likes; every handler reads the body through here, after it has authenticated the
client, so the deadline (`lan.body_timeout_s`) and the size limit (aiohttp's
`client_max_size`) apply to every body the gateway reads.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from edge.api.problems import ProblemError

BODY_TIMEOUT = web.AppKey("body_timeout_s", float)
DEFAULT_BODY_TIMEOUT_S = 15.0


async def read_body(request: web.Request) -> bytes:
    """The whole body, or `request-timeout` if it does not arrive within the deadline."""
    if request.content.is_eof():  # all of it came with the head: nothing to wait for
        return await request.read()
    timeout = request.config_dict.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT_S)
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise ProblemError(
            "request-timeout", f"the request body did not arrive within {timeout:g} s"
        ) from None
