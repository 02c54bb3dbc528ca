"""Responses serialised from the typed views, so the body is exactly what the route's
documented model says (`/openapi.json` is generated from the same classes)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from edge.domain.views import dump_json


def view_response(
    view: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """`view` as an `application/json` response, serialised once by pydantic-core."""
    return web.Response(
        text=dump_json(view),
        status=status,
        content_type="application/json",
        headers=headers,
    )
