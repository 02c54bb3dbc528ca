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
    return json_response(dump_json(view).encode(), status=status, headers=headers)


def json_response(
    body: bytes, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A view already serialised (a refund's JSON, made once by the ledger writer) as an
    `application/json` response."""
    return web.Response(
        body=body,
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )
