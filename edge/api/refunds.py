"""Refund endpoints: every refund (receipt, no-receipt, goodwill) goes through one path."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from edge import logs
from edge.api import examples
from edge.api.approvals import approve
from edge.api.context import ApiContext, fingerprint, parse_model, read_json
from edge.api.fields import PAN_MESSAGE
from edge.api.problems import ProblemError
from edge.api.respond import json_response, view_response
from edge.api.routes import READERS, WRITERS, Param, Route
from edge.api.schemas import RefundIn
from edge.domain.cardguard import contains_pan
from edge.domain.errors import NotFound, PolicyViolation
from edge.domain.money import parse_amount
from edge.domain.views import RefundView
from edge.errors import StorageError
from edge.ledger.refunds import LineRequest, RefundCommand, RefundOutcome

REFUND_PROBLEMS = (
    "validation-failed",
    "not-found",
    "quantity-exceeds-returnable",
    "return-window-expired",
    "final-sale",
    "approval-required",
    "approval-locked",
    "offline-limit-exceeded",
    "idempotency-key-missing",
    "idempotency-key-reused",
    "idempotency-key-in-flight",
    "storage-unavailable",
)

log = logging.getLogger(__name__)


class RefundsApi:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST",
                "/v1/refunds",
                self.post_refund,
                "Refund a receipt sale, a no-receipt return or a goodwill credit",
                WRITERS,
                RefundIn,
                RefundView,
                201,
                REFUND_PROBLEMS,
                ("Idempotency-Key",),
                ok_headers=(
                    Param("Location", "/v1/refunds/{return_id}", required=True),
                    Param(
                        "Idempotent-Replayed",
                        "true when this is the stored response of an earlier request"
                        " with the same key and body",
                        pattern="^true$",
                    ),
                ),
                example=examples.REFUND,
                links=examples.REFUND_LINKS,
            ),
            Route(
                "GET",
                "/v1/refunds/{return_id}",
                self.get_refund,
                "A refund now, with HQ's references once settled",
                READERS,
                None,
                RefundView,
                200,
                ("not-found",),
                example=examples.GET_REFUND,
            ),
        ]

    async def post_refund(self, request: web.Request) -> web.Response:
        principal = await self.ctx.principal(request, WRITERS)
        key = request.headers.get("Idempotency-Key")
        if key is None or not 1 <= len(key) <= 255:
            raise ProblemError(
                "idempotency-key-missing",
                "send an Idempotency-Key header (1-255 characters) with every refund",
                errors=[{"field": "Idempotency-Key", "message": "missing or not 1-255 chars"}],
            )
        _check_key(key)
        body = parse_model(RefundIn, await read_json(request))
        # The approval authorizes the request; it is not part of what the key stands for.
        print_ = fingerprint(body.model_dump(mode="json", exclude={"approval"}))
        slot = (principal.client_id, key)
        running = self.ctx.in_flight.get(slot)
        if running is not None:
            if running != print_:
                raise ProblemError(
                    "idempotency-key-reused",
                    "this Idempotency-Key is in use for a different request",
                )
            raise ProblemError(
                "idempotency-key-in-flight",
                "a request with this Idempotency-Key is still running; retry shortly",
                headers={"Retry-After": "1"},
            )
        self.ctx.in_flight[slot] = print_
        try:
            outcome = await self._refund(body, principal.client_id, key, print_, principal.lane)
        finally:
            self.ctx.in_flight.pop(slot, None)
        refund = outcome.refund
        logs.bind_return_id(refund.return_id)  # every later record of this request names it
        headers = {"Location": f"/v1/refunds/{refund.return_id}"}
        if outcome.replayed:
            headers["Idempotent-Replayed"] = "true"
            log.info("refund %s: the stored answer replayed for a retry", refund.return_id)
        else:
            log.info(
                "refund %s recorded: %s, %s %s to %s%s",
                refund.return_id,
                refund.kind,
                refund.total,
                refund.currency,
                refund.refund_to,
                " (offline)" if refund.offline else "",
            )
            metrics = self.ctx.metrics
            metrics.child(metrics.refunds, body.kind, str(refund.offline).lower()).inc()
        return json_response(outcome.body, status=outcome.status, headers=headers)

    async def _refund(
        self, body: RefundIn, client_id: str, key: str, print_: str, client_lane: str | None
    ) -> RefundOutcome:
        """The writer's job looks the key up in the refund's own transaction, so a retry gets
        the stored response; a request carrying an approval looks first, because a retry must
        not check a PIN again or spend a badge grant."""
        approved_by = None
        if body.approval is not None:
            replay = await self.ctx.ledger.replay(client_id, key, print_)
            if replay is not None:
                return replay
            approved_by = await approve(
                self.ctx, body.approval, client_id, body.register_id, client_lane
            )
        refund_to = body.refund_to or ("original" if body.kind == "receipt" else "store_credit")
        cmd = RefundCommand(
            client_id=client_id,
            idempotency_key=key,
            fingerprint=print_,
            kind=body.kind,
            sale_id=body.sale_id,
            lines=tuple(
                LineRequest(line.line_id, line.quantity, line.reason, line.restock)
                for line in body.lines
            ),
            refund_to=refund_to,
            amount=(
                parse_amount(body.amount, body.currency)
                if body.amount is not None and body.currency is not None
                else None
            ),
            currency=body.currency,
            reason=body.reason,
            note=body.note,
            register_id=body.register_id,
            approved_by=approved_by,
            offline=not self.ctx.link.online,
        )
        started = time.perf_counter()
        try:
            return await self.ctx.ledger.create_refund(cmd, self.ctx.refund_rules)
        except (PolicyViolation, StorageError):
            # Refused or not written: a badge grant it used is still good for a retry.
            if body.approval is not None and body.approval.grant and self.ctx.grants:
                self.ctx.grants.restore(body.approval.grant)
            raise
        finally:
            self.ctx.metrics.refund_seconds.observe(time.perf_counter() - started)

    async def get_refund(self, request: web.Request) -> web.Response:
        await self.ctx.principal(request, READERS)
        return_id = request.match_info["return_id"]
        view = await self.ctx.ledger.refund(return_id)
        if view is None:
            raise NotFound(f"no refund {return_id} is recorded here")
        logs.bind_return_id(view.return_id)
        return view_response(view)


def _check_key(key: str) -> None:
    """The key is stored and replayed: printable ASCII (a structured-field string, as the
    IETF draft has it), and never something that looks like a card number.
    """
    message = None
    if not (key.isascii() and key.isprintable()):
        message = "must be printable ASCII"
    elif contains_pan(key):
        message = PAN_MESSAGE
    if message is not None:
        raise ProblemError(
            "validation-failed",
            f"Idempotency-Key: {message}",
            errors=[{"field": "Idempotency-Key", "message": message}],
        )
