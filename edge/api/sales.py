"""Sales journal and return look-up endpoints."""

from __future__ import annotations

import logging
from typing import Literal

from aiohttp import web

from edge.api import examples
from edge.api.context import ApiContext, fingerprint, parse_model, read_json
from edge.api.fields import PAN_MESSAGE
from edge.api.problems import ProblemError
from edge.api.respond import view_response
from edge.api.routes import READERS, WRITERS, Route
from edge.api.schemas import LookupIn, SaleIn
from edge.contract.timefmt import iso, parse_iso, utcnow
from edge.domain.cardguard import contains_pan
from edge.domain.codes import classify_code
from edge.domain.errors import NotFound
from edge.domain.refund import return_eligibility
from edge.domain.views import Eligibility, EligibleLine, LookupResult, SaleView
from edge.errors import StorageError
from edge.ledger import kpis

log = logging.getLogger(__name__)


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
                SaleView,
                201,
                ("validation-failed", "tender-mismatch", "sale-conflict", "storage-unavailable"),
                also_ok=((200, "already recorded with the same content: the sale as held"),),
                example=examples.sale_example(utcnow()),
                links=examples.SALE_LINKS,
            ),
            Route(
                "GET",
                "/v1/sales/{sale_id}",
                self.get_sale,
                "A sale with what was returned per line",
                READERS,
                None,
                SaleView,
                200,
                ("not-found",),
                example=examples.GET_SALE,
            ),
            Route(
                "POST",
                "/v1/returns/lookup",
                self.lookup,
                "Resolve a scanned or typed code to a sale and its return eligibility",
                READERS,
                LookupIn,
                LookupResult,
                200,
                ("not-found", "hq-unreachable", "validation-failed"),
                example=examples.LOOKUP,
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
        return view_response(view, status=201 if recorded.created else 200)

    async def get_sale(self, request: web.Request) -> web.Response:
        await self.ctx.principal(request, READERS)
        sale_id = request.match_info["sale_id"]
        view = await self.ctx.ledger.sale(sale_id)
        if view is None:
            raise NotFound(f"no sale {sale_id} is recorded here")
        return view_response(view)

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
            if refund is None:
                _refuse_if(looks_like_pan)
                raise NotFound(f"no refund {ref.value} is recorded here")
            if refund.sale_id is None:
                return view_response(
                    LookupResult(
                        matched="return_id",
                        source="local",
                        sale=None,
                        eligibility=None,
                        refund=refund,
                    )
                )
            sale_id = refund.sale_id
        source: Literal["local", "hq"] = "local"
        sale = await self.ctx.ledger.sale(sale_id)
        if sale is None:
            _refuse_if(looks_like_pan)
            sale = await self.ctx.link.lookup_order(sale_id)
            source = "hq"
            if sale is None:
                raise NotFound(f"no sale or order {sale_id} is known here or at HQ")
        await self._note_lookup(sale.sale_id)
        found = LookupResult(
            matched=ref.kind,
            source=source,
            sale=sale,
            eligibility=eligibility(sale, self.ctx.settings.refunds.return_window_days),
            refund=refund,
        )
        return view_response(found)

    async def _note_lookup(self, sale_id: str) -> None:
        """Record when the sale was looked up: the start of the refund processing time KPI.
        A look-up is a read: if the note cannot be written, the register still gets its
        answer."""
        at = utcnow()
        try:
            await self.ctx.ledger.write(lambda conn: kpis.record_lookup(conn, sale_id, at))
        except StorageError as exc:
            log.warning("could not record a look-up for the KPIs: %s", exc)


def _refuse_if(looks_like_pan: bool) -> None:
    if looks_like_pan:
        raise ProblemError(
            "validation-failed",
            "code: " + PAN_MESSAGE,
            errors=[{"field": "code", "message": PAN_MESSAGE}],
        )


def eligibility(sale: SaleView, window_days: int) -> Eligibility:
    """The domain's return rule applied to a sale, as the look-up answers it."""
    lines = [
        EligibleLine(
            line_id=line.line_id,
            returnable_quantity=line.returnable_quantity,
            final_sale=line.final_sale,
        )
        for line in sale.lines
    ]
    verdict = return_eligibility(
        parse_iso(sale.occurred_at), lines, now=utcnow(), window_days=window_days
    )
    return Eligibility(
        eligible=verdict.eligible,
        reasons=list(verdict.reasons),
        window_ends_at=iso(verdict.window_ends_at),
        lines=lines,
    )
