"""RFC 9457 problem details for every 4xx/5xx, with the contract's stable slugs.

The middleware here is the API's one error boundary: refusals from the rules, validation
errors, storage faults, oversized bodies, aiohttp's own HTTP errors and any exception a
handler did not expect all leave as `application/problem+json`, never as a plain-text 500.
Validation messages never echo the value that was refused (it may be a card number).
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from edge import logs
from edge.api.request_ids import request_id_of
from edge.api.schemas import AmountProblems
from edge.contract.field_paths import field_path
from edge.domain.cardguard import contains_pan
from edge.domain.errors import PolicyViolation
from edge.errors import ApiError, StorageError

log = logging.getLogger(__name__)

TYPE_BASE = "https://edge-gateway.dev/problems/"
MEDIA_TYPE = "application/problem+json"

STATUS = {
    "validation-failed": (422, "Request is not valid"),
    "unauthorized": (401, "Authentication required"),
    "forbidden": (403, "Not allowed for this client's role"),
    "approval-required": (403, "Manager approval required"),
    "approval-locked": (429, "Manager locked after wrong PINs"),
    "not-found": (404, "Not found"),
    "sale-conflict": (409, "Sale already recorded with different content"),
    "quantity-exceeds-returnable": (409, "Quantity exceeds what is returnable"),
    "return-window-expired": (422, "Return window expired"),
    "final-sale": (422, "Final sale"),
    "tender-mismatch": (422, "Tenders do not match the total"),
    "offline-limit-exceeded": (409, "Offline refund limit exceeded"),
    "hq-unreachable": (503, "HQ unreachable"),
    "idempotency-key-missing": (400, "Idempotency-Key header missing"),
    "idempotency-key-reused": (422, "Idempotency-Key reused with a different request"),
    "idempotency-key-in-flight": (409, "A request with this Idempotency-Key is in progress"),
    "storage-unavailable": (503, "Storage unavailable"),
    "payload-too-large": (413, "Request body too large"),
    "bad-request": (400, "Bad request"),
    "method-not-allowed": (405, "Method not allowed"),
    "request-timeout": (408, "Request body not received in time"),
    "too-many-subscribers": (429, "Too many event subscriptions for this client"),
    "internal-error": (500, "Internal error"),
}
# Only `internal-error` answers 500, so /metrics can count unexpected failures by status.
INTERNAL_ERROR_STATUS = STATUS["internal-error"][0]
# aiohttp's HTTP errors by status, for the ones a handler or aiohttp itself may raise.
_BY_STATUS = {
    400: "bad-request",
    404: "not-found",
    408: "request-timeout",
    413: "payload-too-large",
}
REDACTED = "(withheld: may hold a card number)"


class ProblemError(ApiError):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.slug = slug
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


PROBLEM_SLUG = web.ResponseKey("problem_slug", str)


def problem_response(
    slug: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
) -> web.Response:
    status, title = STATUS[slug]
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    request_id = request_id or logs.current_request_id()
    if request_id:
        body["request_id"] = request_id
    response = web.Response(
        status=status,
        text=json.dumps(body),
        content_type=MEDIA_TYPE,
        headers=headers,
    )
    response[PROBLEM_SLUG] = slug  # read by /metrics without parsing the body back
    return response


def _field(loc: Sequence[str | int]) -> str:
    """The field a problem names; an unknown key is echoed unless it may be a card number."""
    return field_path([REDACTED if isinstance(p, str) and contains_pan(p) else p for p in loc])


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors(include_input=False, include_url=False):
        ctx_error = None
        if err["type"] == "value_error":
            ctx_error = err["msg"].removeprefix("Value error, ")
        if err["type"] == "value_error" and isinstance(
            (err.get("ctx") or {}).get("error"), AmountProblems
        ):
            continue
        errors.append({"field": _field(err["loc"]) or "(body)", "message": ctx_error or err["msg"]})
    return errors


def _amount_problems(exc: ValidationError) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for err in exc.errors(include_input=False, include_url=False):
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, AmountProblems):
            prefix = _field(err["loc"])
            for field, message in inner.problems:
                found.append(
                    {"field": f"{prefix}.{field}" if prefix else field, "message": message}
                )
    return found


def from_validation(exc: ValidationError) -> ProblemError:
    errors = validation_errors(exc) + _amount_problems(exc)
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
    return ProblemError("validation-failed", summary or "the request is not valid", errors=errors)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def safe_text(text: str, limit: int = 300) -> str:
    """`text` for a log line: one line, bounded, withheld if it may hold a card number, and
    with any token or secret in it masked (aiohttp quotes the bytes of a malformed header)."""
    line = " ".join(text.split())[:limit]
    return REDACTED if contains_pan(line) else logs.redact(line)


def _from_http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own 4xx/5xx (no route, wrong method, body too large...) as a problem."""
    if exc.status == 405:
        allow = exc.headers.get("Allow", "")
        return problem_response(
            "method-not-allowed",
            f"{request.method} is not allowed here; allowed: {allow}",
            instance=request.path,
            headers={"Allow": allow},
        )
    if exc.status == 404:
        return problem_response(
            "not-found", f"no resource at {request.path}", instance=request.path
        )
    slug = _BY_STATUS.get(exc.status, "bad-request" if exc.status < 500 else "internal-error")
    return problem_response(slug, safe_text(exc.reason), instance=request.path)


def log_internal_error(request: web.Request, exc: BaseException) -> str:
    """Log an unexpected failure once, with its frames, under the request's id (a new one if
    it has none) for the client to quote (the HTTP catch-all and the WebSocket handler after
    its upgrade); returns the id."""
    request_id = request_id_of(request) or logs.new_request_id()
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "internal error %s on %s %s: %s: %s\n%s",
        request_id,
        request.method,
        request.path,
        type(exc).__name__,
        safe_text(str(exc)),
        frames.rstrip(),
    )
    return request_id


def _internal_error(request: web.Request, exc: Exception) -> web.Response:
    """Answer 500 `internal-error` (the only status that means this, so the server's
    metrics count it by route)."""
    request_id = log_internal_error(request, exc)
    return problem_response(
        "internal-error",
        f"the gateway failed to handle this request (request id {request_id})",
        instance=request.path,
        headers={"X-Request-Id": request_id},
        request_id=request_id,
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProblemError as exc:
        return problem_response(
            exc.slug, exc.detail, instance=request.path, errors=exc.errors, headers=exc.headers
        )
    except PolicyViolation as exc:
        errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
        return problem_response(exc.code, exc.detail, instance=request.path, errors=errors)
    except ValidationError as exc:
        problem = from_validation(exc)
        return problem_response(
            problem.slug, problem.detail, instance=request.path, errors=problem.errors
        )
    except StorageError as exc:
        log.error("storage unavailable on %s %s: %s", request.method, request.path, exc)
        return problem_response(
            "storage-unavailable",
            "the gateway cannot write durably right now; nothing was recorded, retry later",
            instance=request.path,
            headers={"Retry-After": "5"},
        )
    except web.HTTPRequestEntityTooLarge as exc:
        return problem_response(
            "payload-too-large", exc.text or "body too large", instance=request.path
        )
    except web.HTTPException as exc:
        if exc.status < 400:  # a redirect or an early success is not an error
            raise
        return _from_http_error(request, exc)
    except Exception as exc:  # noqa: BLE001 - the API's one boundary: no plain-text 500s
        return _internal_error(request, exc)
