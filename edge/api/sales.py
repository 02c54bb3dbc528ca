"""Sales journal and return look-up endpoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from edge.api.context import ApiContext, fingerprint, parse_model, read_json
from edge.api.fields import PAN_MESSAGE
from edge.api.problems import ProblemError
from edge.api.routes import READERS, WRITERS, Route
from edge.api.schemas import LookupIn, LookupOut, SaleIn, SaleOut
from edge.domain.cardguard import contains_pan
from edge.domain.codes import classify_code
from edge.domain.errors import NotFound
from edge.ledger.timefmt import iso, parse_iso, utcnow


class SalesApi:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST",
                "/v1/sales",
                self.post_sale,
                "Record a completed sale",
                WRITERS,
                SaleIn,
                SaleOut,
                201,
                ("validation-failed", "tender-mismatch", "sale-conflict", "storage-unavailable"),
            ),
            Route(
                "GET",
                "/v1/sales/{sale_id}",
                self.get_sale,
                "A sale with what was returned per line",
                READERS,
                None,
                SaleOut,
                200,
                ("not-found",),
            ),
            Route(
                "POST",
                "/v1/returns/lookup",
                self.lookup,
                "Resolve a scanned or typed code to a sale and its return eligibility",
                READERS,
                LookupIn,
                LookupOut,
                200,
                ("not-found", "hq-unreachable", "validation-failed"),
            ),
        ]

    async def post_sale(self, request: web.Request) -> web.Response:
        principal = await self.ctx.principal(request, WRITERS)
        body = parse_model(SaleIn, await read_json(request))
        priced = body.priced()
        sale = body.model_dump(mode="json")
        recorded, view = await self.ctx.ledger.record_sale(
            sale, priced, fingerprint(sale), principal.client_id
        )
        return web.json_response(view, status=201 if recorded.created else 200)

    async def get_sale(self, request: web.Request) -> web.Response:
        await self.ctx.principal(request, READERS)
        sale_id = request.match_info["sale_id"]
        view = await self.ctx.ledger.sale(sale_id)
        if view is None:
            raise NotFound(f"no sale {sale_id} is recorded here")
        return web.json_response(view)

    async def lookup(self, request: web.Request) -> web.Response:
        """Resolve a code; one that looks like a card number is refused unless it names a
        record held here (an id, which the guard exempts), before it is echoed or sent to HQ.
        """
        await self.ctx.principal(request, READERS)
        body = parse_model(LookupIn, await read_json(request))
        looks_like_pan = contains_pan(body.code)
        ref = classify_code(body.code)
        if ref is None:
            _refuse_if(looks_like_pan)
            raise NotFound("the code does not name a sale, order or Return ID")
        refund = None
        sale_id = ref.value
        if ref.kind == "return_id":
            refund = await self.ctx.ledger.refund(ref.value)
            if refund is None or refund["sale_id"] is None:
                if refund is None:
                    _refuse_if(looks_like_pan)
                    raise NotFound(f"no refund {ref.value} is recorded here")
                return web.json_response(
                    {
                        "matched": "return_id",
                        "source": "local",
                        "sale": None,
                        "eligibility": None,
                        "refund": refund,
                    }
                )
            sale_id = refund["sale_id"]
        source = "local"
        sale = await self.ctx.ledger.sale(sale_id)
        if sale is None:
            _refuse_if(looks_like_pan)
            sale = await self.ctx.link.lookup_order(sale_id)
            source = "hq"
            if sale is None:
                raise NotFound(f"no sale or order {sale_id} is known here or at HQ")
        out = {
            "matched": ref.kind,
            "source": source,
            "sale": sale,
            "eligibility": eligibility(sale, self.ctx.settings.refunds.return_window_days),
            "refund": refund,
        }
        return web.json_response(out)


def _refuse_if(looks_like_pan: bool) -> None:
    if looks_like_pan:
        raise ProblemError(
            "validation-failed",
            "code: " + PAN_MESSAGE,
            errors=[{"field": "code", "message": PAN_MESSAGE}],
        )


def eligibility(sale: dict[str, Any], window_days: int) -> dict[str, Any]:
    """Whether anything on the sale can still be returned, and why not."""
    try:
        ends = parse_iso(sale["occurred_at"]) + timedelta(days=window_days)
    except OverflowError:  # a sale dated at the end of time, recorded before it was refused
        ends = datetime.max.replace(tzinfo=UTC)
    reasons = []
    if utcnow() > ends:
        reasons.append("return-window-expired")
    lines = [
        {
            "line_id": line["line_id"],
            "returnable_quantity": line.get("returnable_quantity", line["quantity"]),
            "final_sale": line.get("final_sale", False),
        }
        for line in sale["lines"]
    ]
    if all(line["final_sale"] for line in lines):
        reasons.append("final-sale")
    elif not any(line["returnable_quantity"] > 0 for line in lines):
        reasons.append("nothing-left-to-return")
    return {
        "eligible": not reasons,
        "reasons": reasons,
        "window_ends_at": iso(ends),
        "lines": lines,
    }
