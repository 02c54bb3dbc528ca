"""The route table: one entry per endpoint feeds both aiohttp's router and /openapi.json."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    roles: frozenset[str] | None = None  # None: no authentication
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    problems: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())
    # Other statuses answered with a plain JSON body (not a problem), and what they mean.
    also: tuple[tuple[int, str], ...] = ()


WRITERS = frozenset({"register", "handheld"})
READERS = frozenset({"register", "handheld", "monitor"})
