"""The route table: one entry per endpoint feeds both aiohttp's router and /openapi.json."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Example:
    """A request that succeeds (given the operations it links from), for `/openapi.json`:
    integrators copy it, and a fuzzer starts from it to reach the success path."""

    body: Any = None
    params: Mapping[str, str] = field(default_factory=dict)  # path, query and header values


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: how a success of this operation feeds another one."""

    name: str
    operation_id: str
    description: str
    parameters: Mapping[str, str] = field(default_factory=dict)  # name -> runtime expression
    request_body: Any = None  # a body whose strings may be runtime expressions


@dataclass(frozen=True)
class Param:
    """A query parameter the operation reads, or a header its success response carries."""

    name: str
    description: str
    required: bool = False
    pattern: str | None = None


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    roles: frozenset[str] | None = None  # None: no authentication
    request: type[BaseModel] | None = None
    response: type[Any] | None = None  # a view from `edge.domain.views`
    status: int = 200
    problems: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())
    # Other statuses answered with a plain JSON body (not a problem), and what they mean.
    also: tuple[tuple[int, str], ...] = ()
    # The media type of a success body that has no model (text, HTML, run-time JSON).
    media: str | None = None
    # Other success statuses, answered with the same response model, and what they mean.
    also_ok: tuple[tuple[int, str], ...] = ()
    query: tuple[Param, ...] = ()
    ok_headers: tuple[Param, ...] = ()
    example: Example | None = None
    links: tuple[Link, ...] = ()
    operation_id: str = ""  # default: the handler's name

    @property
    def operation(self) -> str:
        return self.operation_id or self.handler.__name__


WRITERS = frozenset({"register", "handheld"})
READERS = frozenset({"register", "handheld", "monitor"})
