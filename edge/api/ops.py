"""Operations endpoints for store IT: liveness, readiness, metrics, OpenAPI, status page.

The figures come from the ledger's own status functions (the same ones HQ's health
message reads), never from SQL written here.
"""

from __future__ import annotations

import html
import shutil
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge import __version__
from edge.api.context import ApiContext
from edge.api.routes import Route
from edge.contract.timefmt import iso
from edge.errors import StorageError
from edge.ledger import recon
from edge.ledger.status import LedgerStatus

JSON = "application/json"


class OpsApi:
    def __init__(self, ctx: ApiContext, openapi: dict[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.openapi = openapi or {}
        self.started = time.monotonic()

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/healthz", self.healthz, "Alive (no authentication)", media=JSON),
            Route(
                "GET",
                "/readyz",
                self.readyz,
                "Ready: database writable; HQ link and device states",
                media=JSON,
                also=((503, "not ready: the ledger cannot write (same body as 200)"),),
            ),
            Route("GET", "/metrics", self.metrics, "Prometheus metrics", media="text/plain"),
            Route(
                "GET", "/openapi.json", self.openapi_json, "This API's OpenAPI document", media=JSON
            ),
            Route("GET", "/", self.status_page, "Status page for store IT", media="text/html"),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": __version__})

    async def status(self) -> dict[str, Any]:
        """The facts shared by /readyz and the status page."""
        db_ok, db_detail = True, "writable"
        ledger: LedgerStatus | None = None
        try:
            await self.ctx.ledger.check_writable()
            ledger = await self.ctx.ledger.status()
        except StorageError as exc:
            db_ok, db_detail = False, str(exc)
        stats = None if ledger is None else ledger.outbox
        disk = shutil.disk_usage(self.ctx.settings.data_dir)
        checks: dict[str, Any] = {}
        for check in self.ctx.extra_ready_checks:
            ok, detail = await check()
            checks.update(detail)
            db_ok = db_ok and ok
        return {
            "ready": db_ok,
            "version": __version__,
            "store_id": self.ctx.settings.store_id,
            "gateway_id": self.ctx.settings.gateway_id,
            "uptime_s": int(time.monotonic() - self.started),
            "database": {"ok": db_detail == "writable", "detail": db_detail},
            "hq_link": {"online": self.ctx.link.online, "state": self.ctx.link.state},
            "outbox": None
            if stats is None
            else {
                "pending": stats.pending,
                "oldest_pending_at": stats.oldest_pending_at,
                "last_seq": stats.last_seq,
                "last_acked_at": stats.last_acked_at,
            },
            "refunds_today": None if ledger is None else ledger.refunds_today,
            "disk_free_bytes": disk.free,
            **checks,
        }

    async def readyz(self, request: web.Request) -> web.Response:
        status = await self.status()
        return web.json_response(status, status=200 if status["ready"] else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.ctx.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi_json(self, request: web.Request) -> web.Response:
        return web.json_response(self.openapi)

    async def reconciliation(self) -> dict[str, Any]:
        """Open mismatches and the latest report, in counts only: the page needs no login,
        so no amounts or refund ids."""

        def read(conn: recon.Connection) -> dict[str, Any]:
            report = recon.latest_report(conn)
            return {
                "open_mismatches": recon.open_mismatch_count(conn),
                "latest_report": "none yet"
                if report is None
                else f"{report.report_id} at {iso(report.generated_at)}:"
                f" {report.checked} checked, {report.matched} matched,"
                f" {len(report.mismatches)} mismatches",
            }

        try:
            return await self.ctx.ledger.read(read)
        except StorageError as exc:
            return {"unavailable": str(exc)}

    async def status_page(self, request: web.Request) -> web.Response:
        status = {**await self.status(), "reconciliation": await self.reconciliation()}
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in _flatten(status)
        )
        page = (
            "<!doctype html><meta charset=utf-8><title>edge gateway</title>"
            "<style>body{font:15px system-ui;margin:2em}th{text-align:left;padding-right:2em}"
            "</style><h1>Edge gateway "
            + html.escape(status["store_id"])
            + " / "
            + html.escape(status["gateway_id"])
            + "</h1>"
            + ("<p>Ready.</p>" if status["ready"] else "<p><b>NOT READY</b></p>")
            + f"<table>{rows}</table>"
        )
        return web.Response(text=page, content_type="text/html")


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flatten(value, name + ".")
        else:
            out.append((name, value))
    return out
