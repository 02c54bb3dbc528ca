"""Every response a test receives from the gateway, checked against its `/openapi.json`.

`ResponseCheck` is an aiohttp client middleware: a session built with it fails the test
(`ResponseViolation`) on any answer that the document does not promise: a status the
operation does not list, a media type it does not list for that status, a JSON body that
does not match the schema, or a required response header that is missing. Requests to
paths or methods the document does not have must still answer a valid problem document.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:edge-gateway:openapi"
PROBLEM = "#/components/schemas/Problem"
JSON_TYPES = ("application/json", "application/problem+json")


class ResponseViolation(AssertionError):
    """The gateway answered something its `/openapi.json` does not document."""


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class OpenApiResponses:
    """The response side of one OpenAPI document, as checks on (method, path, response)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(DOC_URI, resource)
        self._paths = [
            (re.compile("^" + re.sub(r"\\{[^}/]+\\}", "[^/]+", re.escape(p)) + "$"), p)
            for p in doc["paths"]
        ]
        self._validators: dict[str, Draft202012Validator] = {}
        self.checked = 0

    def _validator(self, pointer: str) -> Draft202012Validator:
        if pointer not in self._validators:
            self._validators[pointer] = Draft202012Validator(
                {"$ref": DOC_URI + pointer},
                registry=self._registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
        return self._validators[pointer]

    def _schema_errors(self, pointer: str, body: bytes) -> list[str]:
        try:
            data = json.loads(body)
        except ValueError:
            return ["the body is not JSON"]
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in self._validator(pointer).iter_errors(data)
        ]

    def violations(
        self,
        method: str,
        path: str,
        status: int,
        headers: dict[str, str],
        body: bytes,
    ) -> list[str]:
        """What is wrong with this response; empty when the document promises it."""
        self.checked += 1
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        template = next((t for rx, t in self._paths if rx.match(path)), None)
        operation = self.doc["paths"].get(template, {}).get(method.lower()) if template else None
        if operation is None:  # no such operation: still a problem document
            if status < 400 or media != "application/problem+json":
                return [f"{status} {media or '(no content type)'} for an undocumented operation"]
            return self._schema_errors(PROBLEM, body)
        responses = operation["responses"]
        key = str(status) if str(status) in responses else "default"
        if key not in responses:
            return [f"status {status} is not documented for {method} {template}"]
        found = responses[key]
        problems = [
            f"required response header {name} is missing"
            for name, header in found.get("headers", {}).items()
            if header.get("required") and name.lower() not in headers
        ]
        content = found.get("content", {})
        if status == 101 or (not body and not content):
            return problems
        if media not in content:
            return [*problems, f"{media or 'a body'} is not documented for {status}"]
        if media in JSON_TYPES and "schema" in content[media]:
            pointer = _pointer(
                "paths", template or "", method.lower(), "responses", key, "content", media
            )
            problems += self._schema_errors(pointer + "/schema", body)
        return problems


class ResponseCheck:
    """Client middleware that raises `ResponseViolation` for an undocumented response.

    It checks nothing until `load` has read the gateway's document.
    """

    def __init__(self) -> None:
        self.responses: OpenApiResponses | None = None

    async def load(self, http: aiohttp.ClientSession, base: str) -> None:
        async with http.get(f"{base}/openapi.json") as r:
            assert r.status == 200
            self.responses = OpenApiResponses(await r.json())

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        if self.responses is None or response.status == 101:
            return response
        body = await response.read()
        headers = {k.lower(): v for k, v in response.headers.items()}
        found = self.responses.violations(
            request.method, request.url.path, response.status, headers, body
        )
        if found:
            raise ResponseViolation(
                f"{request.method} {request.url.path} -> {response.status}: " + "; ".join(found)
            )
        return response
