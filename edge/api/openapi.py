"""/openapi.json built from the route table and the pydantic models, so it cannot drift.

Besides each route's own refusals, every operation lists what the API's shared layers may
answer: 401/403 where a token is needed, 408/413 wherever a body is read, 422 wherever
one is validated, and 500 `internal-error` everywhere.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from edge import __version__
from edge.api.problems import STATUS, TYPE_BASE
from edge.api.routes import Link, Route
from edge.api.schemas import Problem, TokenOut


def problem_slugs(route: Route) -> list[str]:
    """Every problem the route can answer, its own first, then the shared layers'."""
    slugs = list(route.problems)
    if route.roles is not None:
        slugs += ["unauthorized", "forbidden"]
    if route.method == "POST":
        slugs += ["request-timeout", "payload-too-large"]
    if route.request is not None:
        slugs.append("validation-failed")
    slugs.append("internal-error")
    return list(dict.fromkeys(slugs))


def build_openapi(routes: list[Route]) -> dict[str, Any]:
    # Request models and response views, each schema generated from the class itself.
    types: set[type[Any]] = {Problem, TokenOut}
    for route in routes:
        types.update(m for m in (route.request, route.response) if m is not None)
    mode: JsonSchemaMode = "validation"
    _, schema = TypeAdapter.json_schemas(
        [((t.__name__, mode), mode, TypeAdapter(t)) for t in sorted(types, key=_name)],
        ref_template="#/components/schemas/{model}",
    )
    components = schema.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    paths["/oauth/token"] = {"post": _TOKEN_OPERATION}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Store edge gateway LAN API",
            "version": __version__,
            "description": "Every response carries an `X-Request-Id` header: the id of the"
            " request in the gateway's logs (a valid one sent by the client is kept).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}},
                },
                "client": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "client_id and client_secret from `edge-gateway clients add`",
                },
            },
        },
    }


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation,
        "summary": route.summary,
        "responses": {},
    }
    if route.roles is not None:
        op["security"] = [{"oauth2": []}]
        op["description"] = "Roles: " + ", ".join(sorted(route.roles | {"admin"}))
    params = _parameters(route)
    if params:
        op["parameters"] = params
    if route.request is not None:
        media: dict[str, Any] = {"schema": _ref(route.request)}
        if route.example is not None and route.example.body is not None:
            media["example"] = route.example.body
        op["requestBody"] = {"required": True, "content": {"application/json": media}}
    responses = op["responses"]
    ok: dict[str, Any] = {
        "description": "Switching Protocols (WebSocket)" if route.status == 101 else "OK"
    }
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": _ref(route.response)}}
    elif route.media is not None:
        shape = "object" if route.media == "application/json" else "string"
        ok["content"] = {route.media: {"schema": {"type": shape}}}
    if route.ok_headers:
        ok["headers"] = {
            h.name: {
                "description": h.description,
                "required": h.required,
                "schema": _string(h.pattern),
            }
            for h in route.ok_headers
        }
    if route.links:
        ok["links"] = {link.name: _link(link) for link in route.links}
    responses[str(route.status)] = ok
    for status, meaning in route.also_ok:
        responses[str(status)] = {**ok, "description": meaning}
    for status, meaning in route.also:
        responses[str(status)] = {
            "description": meaning,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    for slug in problem_slugs(route):
        status, title = STATUS[slug]
        entry = responses.setdefault(
            str(status),
            {
                "description": "",
                "content": {"application/problem+json": {"schema": _ref(Problem)}},
            },
        )
        entry["description"] = "; ".join(
            filter(None, [entry["description"], f"{TYPE_BASE}{slug} ({title})"])
        )
    return op


def _parameters(route: Route) -> list[dict[str, Any]]:
    """Path, header and query parameters, each with the route's example value if it has one."""
    given = route.example.params if route.example is not None else {}
    params: list[dict[str, Any]] = [
        {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
        for part in route.path.split("/")
        if part.startswith("{")
    ]
    params += [
        {
            "name": h,
            "in": "header",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
        for h in route.headers
    ]
    params += [
        {
            "name": q.name,
            "in": "query",
            "required": q.required,
            "description": q.description,
            "schema": _string(q.pattern),
        }
        for q in route.query
    ]
    for param in params:
        if param["name"] in given:
            param["example"] = given[param["name"]]
    return params


def _link(link: Link) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": link.operation_id, "description": link.description}
    if link.parameters:
        out["parameters"] = dict(link.parameters)
    if link.request_body is not None:
        out["requestBody"] = link.request_body
    return out


def _string(pattern: str | None) -> dict[str, str]:
    return {"type": "string"} if pattern is None else {"type": "string", "pattern": pattern}


_OAUTH_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    "required": ["error"],
}


def _name(model: type[Any]) -> str:
    return model.__name__


def _ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


_TOKEN_OPERATION: dict[str, Any] = {
    "operationId": "token",
    "summary": "OAuth 2.0 client credentials token (client authenticated by HTTP Basic)",
    "security": [{"client": []}],
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"grant_type": {"const": "client_credentials"}},
                    "required": ["grant_type"],
                },
                "example": {"grant_type": "client_credentials"},
            }
        },
    },
    "responses": {
        "200": {
            "description": "token",
            "content": {"application/json": {"schema": _ref(TokenOut)}},
        },
        "400": {
            "description": "invalid_request or unsupported_grant_type (RFC 6749)",
            "content": {"application/json": {"schema": _OAUTH_ERROR}},
        },
        "401": {
            "description": "invalid_client (RFC 6749)",
            "content": {"application/json": {"schema": _OAUTH_ERROR}},
        },
        **{
            str(STATUS[slug][0]): {
                "description": f"{TYPE_BASE}{slug} ({STATUS[slug][1]})",
                "content": {"application/problem+json": {"schema": _ref(Problem)}},
            }
            for slug in ("request-timeout", "payload-too-large", "internal-error")
        },
    },
}
