"""/openapi.json built from the route table and the pydantic models, so it cannot drift.

Besides each route's own refusals, every operation lists what the API's shared layers may
answer: 401/403 where a token is needed, 408/413 wherever a body is read, 422 wherever
one is validated, and 500 `internal-error` everywhere.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from edge import __version__
from edge.api.problems import STATUS, TYPE_BASE
from edge.api.routes import Route
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
    models: set[type[BaseModel]] = {Problem, TokenOut}
    for route in routes:
        models.update(m for m in (route.request, route.response) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, schema = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
    )
    components = schema.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op: dict[str, Any] = {"summary": route.summary, "responses": {}}
        if route.roles is not None:
            op["security"] = [{"oauth2": []}]
            op["description"] = "Roles: " + ", ".join(sorted(route.roles | {"admin"}))
        params = [
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
        if params:
            op["parameters"] = params
        if route.request is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(route.request)}},
            }
        ok: dict[str, Any] = {
            "description": "Switching Protocols (WebSocket)" if route.status == 101 else "OK"
        }
        if route.response is not None:
            ok["content"] = {"application/json": {"schema": _ref(route.response)}}
        op["responses"][str(route.status)] = ok
        for status, meaning in route.also:
            op["responses"][str(status)] = {
                "description": meaning,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        for slug in problem_slugs(route):
            status, title = STATUS[slug]
            entry = op["responses"].setdefault(
                str(status),
                {
                    "description": "",
                    "content": {"application/problem+json": {"schema": _ref(Problem)}},
                },
            )
            entry["description"] = "; ".join(
                filter(None, [entry["description"], f"{TYPE_BASE}{slug} ({title})"])
            )
        paths.setdefault(route.path, {})[route.method.lower()] = op
    paths["/oauth/token"] = {
        "post": {
            "summary": "OAuth 2.0 client credentials token (client authenticated by HTTP Basic)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {"grant_type": {"const": "client_credentials"}},
                            "required": ["grant_type"],
                        }
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
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Store edge gateway LAN API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}},
                }
            },
        },
    }


_OAUTH_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    "required": ["error"],
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}
