"""Reconciliation and KPI endpoints for store IT and HQ's monitors (contract v1.1).

Everything here reads what the ledger holds: the reports the HQ link made from HQ's
digests and from its checkpoint, the mismatches still open, and the refund figures. The
one write, `POST /v1/reconciliation/runs`, asks the HQ link to run its checkpoint now
(without HQ configured the link runs it locally and publishes nothing).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aiohttp import web

from edge.api.context import ApiContext
from edge.api.problems import ProblemError
from edge.api.recon_schemas import OPEN_LISTED_MAX, Reconciliation, RunAccepted
from edge.api.respond import view_response
from edge.api.routes import Example, Param, Route
from edge.contract.recon import Report
from edge.contract.timefmt import utcnow
from edge.domain.errors import NotFound
from edge.domain.kpis import Kpis
from edge.ledger import kpis, recon

ADMIN = frozenset({"admin"})
MONITORS = frozenset({"admin", "monitor"})

KPI_DEFAULT_SPAN = timedelta(days=30)
KPI_MAX_SPAN = timedelta(days=400)  # a year and a bit: one read stays bounded
# RFC 3339 date-time with its offset; `+` must be sent as `%2B` in a query string.
RFC3339 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_RFC3339 = re.compile(RFC3339)
REPORT_EXAMPLE_ID = "RR-01JD3X5Q7W8ZK3M9T2B4C6D8F0"


class ReconciliationApi:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/v1/reconciliation",
                self.get_reconciliation,
                "The latest reconciliation report and the mismatches still open",
                MONITORS,
                None,
                Reconciliation,
                200,
            ),
            Route(
                "GET",
                "/v1/reconciliation/reports/{report_id}",
                self.get_recon_report,
                "One reconciliation report, as it was sent to HQ",
                MONITORS,
                None,
                Report,
                200,
                ("not-found",),
                example=Example(params={"report_id": REPORT_EXAMPLE_ID}),
            ),
            Route(
                "POST",
                "/v1/reconciliation/runs",
                self.run_reconciliation,
                "Run the reconciliation checkpoint now; 202 with the id of its report",
                ADMIN,
                None,
                RunAccepted,
                202,
                ("hq-unreachable", "storage-unavailable"),
                ok_headers=(
                    Param("Location", "/v1/reconciliation/reports/{report_id}", required=True),
                ),
            ),
            Route(
                "GET",
                "/v1/kpis",
                self.get_kpis,
                "Refund KPIs over a period (default: the last 30 days)",
                MONITORS,
                None,
                Kpis,
                200,
                ("validation-failed",),
                query=(
                    Param(
                        "from",
                        "start of the period, RFC 3339 with offset, included"
                        " (default: `to` less 30 days)",
                        pattern=RFC3339,
                    ),
                    Param(
                        "to",
                        "end of the period, RFC 3339 with offset, excluded (default: now);"
                        " at most 400 days after `from`",
                        pattern=RFC3339,
                    ),
                ),
                example=Example(
                    params={"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
                ),
            ),
        ]

    async def get_reconciliation(self, request: web.Request) -> web.Response:
        await self.ctx.principal(request, MONITORS)
        now = utcnow()

        def read(conn: recon.Connection) -> Reconciliation:
            return Reconciliation(
                latest_report=recon.latest_report(conn),
                open_count=recon.open_mismatch_count(conn),
                open_mismatches=recon.open_mismatches(conn, now, limit=OPEN_LISTED_MAX),
            )

        return view_response(await self.ctx.ledger.read(read))

    async def get_recon_report(self, request: web.Request) -> web.Response:
        await self.ctx.principal(request, MONITORS)
        report_id = request.match_info["report_id"]  # not echoed: it is whatever was sent
        report = await self.ctx.ledger.read(lambda conn: recon.report(conn, report_id))
        if report is None:
            raise NotFound("no reconciliation report with this id is held here")
        return view_response(report)

    async def run_reconciliation(self, request: web.Request) -> web.Response:
        await self.ctx.principal(request, ADMIN)
        report_id = await self.ctx.link.run_checkpoint()
        return view_response(
            RunAccepted(report_id=report_id),
            status=202,
            headers={"Location": f"/v1/reconciliation/reports/{report_id}"},
        )

    async def get_kpis(self, request: web.Request) -> web.Response:
        await self.ctx.principal(request, MONITORS)
        start, end = kpi_period(request.query.get("from"), request.query.get("to"), utcnow())
        return view_response(await self.ctx.ledger.read(lambda conn: kpis.kpis(conn, start, end)))


def _refuse(field: str, message: str) -> ProblemError:
    return ProblemError(
        "validation-failed", f"{field}: {message}", errors=[{"field": field, "message": message}]
    )


def _instant(field: str, text: str) -> datetime:
    """An RFC 3339 time with its offset, in UTC; the value is never echoed back."""
    message = "not an RFC 3339 time with offset (e.g. 2026-11-01T00:00:00Z; send + as %2B)"
    if not _RFC3339.fullmatch(text):
        raise _refuse(field, message)
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _refuse(field, message) from None


def kpi_period(start: str | None, end: str | None, now: datetime) -> tuple[datetime, datetime]:
    """[from, to) from the query: `to` defaults to now, `from` to 30 days before `to`."""
    to = now if end is None else _instant("to", end)
    try:
        from_ = to - KPI_DEFAULT_SPAN if start is None else _instant("from", start)
    except OverflowError:
        raise _refuse("to", "too early to count 30 days back from") from None
    if from_ >= to:
        raise _refuse("from", "must be before `to`")
    if to - from_ > KPI_MAX_SPAN:
        raise _refuse("from", f"the period may span at most {KPI_MAX_SPAN.days} days")
    return from_, to
