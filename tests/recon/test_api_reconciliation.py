"""The reconciliation endpoints over real HTTP: a checkpoint run on demand finds a refund HQ
never confirmed, its report is retrievable and shown with the open mismatches; roles,
unknown reports, the standalone gateway and the status page."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from edge.api.context import StandaloneLink
from edge.contract.timefmt import iso, utcnow
from edge.hqlink.recon import checkpoint_once
from tests.core.conftest import Gateway, make_settings, sale
from tests.recon.lan import CheckpointLink, lan_gateway

RUNS = "/v1/reconciliation/runs"


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with lan_gateway(make_settings(tmp_path)) as gateway:
        yield gateway


async def overdue_refund(gw: Gateway) -> str:
    """A refund HQ has not answered for two days (past the default `settle_within`)."""
    body = sale()
    status, _, _ = await gw.call("POST", "/v1/sales", body)
    assert status == 201
    refund = {"sale_id": body["sale_id"], "lines": [{"line_id": "1", "quantity": 1}]}
    status, made, _ = await gw.call("POST", "/v1/refunds", refund, key="late-1")
    assert status == 201, made
    return_id = str(made["return_id"])
    two_days_ago = iso(utcnow() - timedelta(days=2))

    def job(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE returns SET created_at = ?, updated_at = ? WHERE return_id = ?",
            (two_days_ago, two_days_ago, return_id),
        )

    await gw.ledger.write(job)
    return return_id


async def test_before_any_run_there_is_no_report(gw: Gateway) -> None:
    status, body, _ = await gw.call("GET", "/v1/reconciliation", role="monitor")
    assert (status, body) == (200, {"latest_report": None, "open_count": 0, "open_mismatches": []})


async def test_a_run_on_demand_reports_an_unconfirmed_refund(gw: Gateway) -> None:
    return_id = await overdue_refund(gw)
    status, run, headers = await gw.call("POST", RUNS, role="admin")
    assert status == 202, run
    report_id = run["report_id"]
    assert headers["Location"] == f"/v1/reconciliation/reports/{report_id}"
    status, report, _ = await gw.call("GET", headers["Location"], role="monitor")
    assert status == 200, report
    assert (report["report_id"], report["digest_id"]) == (report_id, None)
    (mismatch,) = report["mismatches"]
    assert (mismatch["kind"], mismatch["return_id"]) == ("unconfirmed", return_id)
    assert mismatch["store_amount"] == "17.09"
    assert report["summary"]["by_kind"] == {"unconfirmed": 1}

    status, now, _ = await gw.call("GET", "/v1/reconciliation", role="monitor")
    assert status == 200
    assert now["latest_report"] == report
    assert now["open_count"] == 1
    (open_one,) = now["open_mismatches"]
    assert open_one["mismatch_id"] == mismatch["mismatch_id"]
    assert open_one["diagnosis"]["class"] in {"integration", "process", "both", "undetermined"}
    assert set(open_one["diagnosis"]["answers"]) == {
        "repeats",
        "manual_touch",
        "concentrated",
        "delayed",
        "reproducible",
    }
    assert open_one["age_s"] >= 2 * 86_400 - 60

    # A second run finds the same mismatch (still open, same id) in a new report.
    status, again, _ = await gw.call("POST", RUNS, role="admin")
    assert status == 202
    assert again["report_id"] != report_id
    status, now, _ = await gw.call("GET", "/v1/reconciliation", role="admin")
    assert now["latest_report"]["report_id"] == again["report_id"]
    assert [m["mismatch_id"] for m in now["open_mismatches"]] == [mismatch["mismatch_id"]]
    assert isinstance(gw.ctx.link, CheckpointLink)
    assert gw.ctx.link.runs == 2


async def test_an_unknown_report_is_not_found(gw: Gateway) -> None:
    status, problem, headers = await gw.call(
        "GET", "/v1/reconciliation/reports/RP-nothing-here", role="monitor"
    )
    assert status == 404
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["type"].endswith("/not-found")


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/v1/reconciliation", "register"),
        ("GET", "/v1/reconciliation/reports/RP-x", "register"),
        ("POST", RUNS, "register"),
        ("GET", "/v1/kpis", "register"),
        ("GET", "/v1/reconciliation", "handheld"),
        ("POST", RUNS, "monitor"),
    ],
)
async def test_roles(gw: Gateway, method: str, path: str, role: str) -> None:
    status, problem, _ = await gw.call(method, path, role=role)
    assert (status, problem["type"].rsplit("/", 1)[1]) == (403, "forbidden")
    async with gw.http.request(method, f"{gw.base}{path}") as r:
        assert r.status == 401
    assert isinstance(gw.ctx.link, CheckpointLink)
    assert gw.ctx.link.runs == 0


async def test_a_standalone_gateway_runs_the_checkpoint_locally(tmp_path: Path) -> None:
    """As `edge/app.py` builds it with no HQ: the checkpoint on the ledger, published
    nowhere."""

    async def local() -> str:
        result = await checkpoint_once(gateway.ledger, gateway.ctx.settings.recon, utcnow())
        return result.report_id

    link = StandaloneLink(local)
    async with lan_gateway(make_settings(tmp_path), link) as gateway:
        await overdue_refund(gateway)
        status, run, _ = await gateway.call("POST", RUNS, role="admin")
        assert status == 202, run
        status, report, _ = await gateway.call(
            "GET", f"/v1/reconciliation/reports/{run['report_id']}", role="admin"
        )
        assert (status, len(report["mismatches"])) == (200, 1)


async def test_without_a_checkpoint_a_run_is_hq_unreachable(tmp_path: Path) -> None:
    async with lan_gateway(make_settings(tmp_path), StandaloneLink()) as gateway:
        status, problem, _ = await gateway.call("POST", RUNS, role="admin")
        assert (status, problem["type"].rsplit("/", 1)[1]) == (503, "hq-unreachable")


async def test_the_status_page_shows_open_mismatches_and_the_latest_report(gw: Gateway) -> None:
    async with gw.http.get(f"{gw.base}/") as r:
        page = await r.text()
    assert "<th>Open mismatches</th><td>0</td>" in page
    assert '<th>Latest report</th><td><span class="muted">none yet</span></td>' in page
    return_id = await overdue_refund(gw)
    _, run, _ = await gw.call("POST", RUNS, role="admin")
    async with gw.http.get(f"{gw.base}/") as r:
        page = await r.text()
    assert "<th>Open mismatches</th><td>1</td><" in page
    assert "<th>By kind</th><td>1 unconfirmed</td>" in page
    assert f"{run['report_id']} at " in page
    assert "1 checked, 0 matched, 1 mismatches" in page
    # no login: the mismatch in counts and kinds only; the refund is listed once, among
    # the latest refunds
    assert page.count(return_id) == 1
    assert page.index(return_id) > page.index('id="refunds"')
