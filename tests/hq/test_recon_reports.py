"""Reconciliation over a real broker: reports stored once whatever the number of instances
and copies, shown fleet-wide (page, JSON, CLI in three formats); digests sent on schedule
once per slot by several instances, and on demand from the command line."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from edge.contract.payloads import encode
from edge.contract.recon import (
    Diagnosis,
    DiagnosisAnswers,
    Digest,
    Mismatch,
    Report,
    ReportSummary,
)
from edge.contract.timefmt import utcnow
from edge.hq.processor import SimulatedErp, SimulatedProcessor, SimulatedSettings
from edge.hq.recon.reports import recon_view, store_report
from edge.hq.service import HqService, HqServiceSettings
from edge.hq.store import HqStore
from edge.hq.tables import recon_mismatches, recon_reports
from edge.hq.web import FleetServer, stats_of
from tests.core.daemon import ROOT
from tests.hq.test_recon_digest import STORE, add_refunds, refund_data
from tests.hqlink.broker import Mosquitto, free_port
from tests.hqlink.harness import PREFIX, Observer, fast_broker

GW = "gw-01"
BASE = f"{PREFIX}/{STORE}/{GW}"


@asynccontextmanager
async def instances(
    db_url: str, port: int, count: int, **settings: Any
) -> AsyncIterator[list[HqService]]:
    async with AsyncExitStack() as stack:
        services = []
        for n in range(count):
            config = HqServiceSettings(
                broker=fast_broker(port),
                db_url=db_url,
                instance=f"hq-{n}",
                stats_interval_s=0.05,  # presence with counters: what the tests wait on
                **settings,
            )
            service = HqService(
                config,
                HqStore(config.store_url()),
                SimulatedProcessor(SimulatedSettings()),
                SimulatedErp(),
            )
            await stack.enter_async_context(service)
            task = asyncio.create_task(service.run())
            stack.push_async_callback(asyncio.gather, task, return_exceptions=True)
            stack.callback(task.cancel)
            async with asyncio.timeout(10):
                await service.client.wait_connected()
            services.append(service)
        yield services


def mismatch(
    mid: str, kind: str, class_: str, pattern: str | None, delta: str | None, hq: str | None
) -> Mismatch:
    now = utcnow()
    return Mismatch(
        mismatch_id=mid,
        kind=kind,  # type: ignore[arg-type]
        return_id=f"R-{mid}",
        external_ref=None,
        sale_id="S-1",
        currency="USD",
        store_amount=None if hq is None or delta is None else Decimal(hq) - Decimal(delta),
        hq_amount=None if hq is None else Decimal(hq),
        delta=None if delta is None else Decimal(delta),
        detected_at=now,
        age_s=0.0,
        diagnosis=Diagnosis(
            class_=class_,  # type: ignore[arg-type]
            pattern=pattern,  # type: ignore[arg-type]
            answers=DiagnosisAnswers(
                repeats=True, manual_touch=False, concentrated=None, delayed=False,
                reproducible=True,
            ),
            evidence=["the ERP total differs"],
            fix_sequence=["audit the refund mapping"],
        ),
    )  # fmt: skip


def report(report_id: str, mismatches: list[Mismatch], gateway: str = GW) -> Report:
    now = utcnow()
    return Report(
        report_id=report_id,
        digest_id="D-1",
        store_id=STORE,
        gateway_id=gateway,
        from_=now - timedelta(days=1),
        to=now,
        generated_at=now,
        checked=10,
        matched=10 - len(mismatches),
        mismatches=mismatches,
        summary=ReportSummary(by_kind={}, by_class={}, amount_at_risk={}),
    )


async def count(hq: HqStore, column: Any) -> int:
    async def query(conn: AsyncConnection) -> int:
        return int((await conn.execute(select(func.count(column)))).scalar_one())

    return await hq.read(query)


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", "hq", "--db", db_url, "recon", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_reports_are_stored_once_and_shown_fleet_wide(db_url: str, broker: Mosquitto) -> None:
    first = report(
        "RPT-1",
        [
            mismatch("M-1", "amount-mismatch", "integration", "rounding-drift", "-0.01", "41.79"),
            mismatch("M-2", "amount-mismatch", "integration", "rounding-drift", "0.02", "9.02"),
            mismatch("M-3", "unknown-to-store", "process", "register-bypass", None, "25.00"),
        ],
    )
    other_store = report("RPT-2", [mismatch("M-9", "duplicate", "integration", None, None, "5")])
    other_store = other_store.model_copy(update={"store_id": "0043"})
    async with (
        Observer(broker.port, [f"{PREFIX}/_hq/presence/+"]) as watch,
        instances(db_url, broker.port, 2, shared_subscriptions="off") as services,
    ):
        for _ in range(2):  # a duplicate publish, to two instances that each take every copy
            watch.client.publish(f"{BASE}/recon/report", encode(first), qos=1)
        watch.client.publish(f"{PREFIX}/0043/gw-01/recon/report", encode(other_store), qos=1)
        watch.client.publish(f"{BASE}/recon/report", encode(other_store), qos=1)  # wrong topic
        watch.client.publish(f"{BASE}/recon/report", b'{"report_id": 1}', qos=1)

        def seen(key: str) -> int:
            return sum(s.counters[key] for s in services)

        await watch.wait_for(
            lambda: (
                seen("recon_reports_new") + seen("recon_reports_duplicate") == 6
                and seen("malformed_messages") == 4
            )
        )
        assert seen("recon_reports_new") == 2
        one = services[0]
        assert await count(one.store, recon_reports.c.report_id) == 2
        assert await count(one.store, recon_mismatches.c.mismatch_id) == 4

        view = await one.store.read(recon_view)
        assert view["open_mismatches"] == 4
        assert view["amount_at_risk"] == {"USD": "30.03"}
        assert view["by_store"]["0042"] == {"count": 3, "amount_at_risk": {"USD": "25.03"}}
        assert view["by_class"]["process"]["count"] == 1
        assert view["by_pattern"]["rounding-drift"] == {
            "count": 2,
            "amount_at_risk": {"USD": "0.03"},
        }
        assert view["by_kind"]["duplicate"]["amount_at_risk"] == {"USD": "5"}
        assert {r["report_id"] for r in view["reports"]} == {"RPT-1", "RPT-2"}

        port = free_port()
        async with (
            FleetServer(stats_of(one), "127.0.0.1", port),
            aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
        ):
            async with http.get("/api/recon") as resp:
                assert resp.status == 200
                served = await resp.json()
            async with http.get("/recon") as resp:
                page = await resp.text()
            async with http.get("/") as resp:
                assert 'href="recon"' in await resp.text()
            async with http.get("/metrics") as resp:
                metrics = await resp.text()
        assert served["rows"] == view["rows"]
        assert 'edge_hq_recon_reports_total{outcome="new"}' in metrics
        assert '<table id="recon">' in page
        assert "rounding-drift" in page
        assert "25.03 USD" in page
        assert "register-bypass" in page

    as_json = cli(db_url, "report", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["rows"] == view["rows"]
    as_csv = cli(db_url, "report", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [
        {k: (v or None) if k != "count" else int(v) for k, v in r.items()} for r in rows
    ] == view["rows"]
    table = cli(db_url, "report").stdout.splitlines()
    assert table[0].split() == list(rows[0].keys())
    assert [line.split() for line in table[1:-1]] == [[v or "-" for v in r.values()] for r in rows]
    assert table[-1] == "open mismatches: 4; amount at risk: 30.03 USD"


async def test_a_later_report_covering_the_period_resolves_what_it_no_longer_lists(
    db_url: str,
) -> None:
    async with HqStore(db_url) as hq:
        older = report("RPT-1", [mismatch("M-1", "duplicate", "integration", None, "1", "2")])
        store = partial(
            store_report,
            store_id=STORE,
            gateway_id=GW,
            instance="t",
        )
        assert (await hq.write(partial(store, report=older))).new
        assert not (await hq.write(partial(store, report=older))).new
        newer = report("RPT-2", [])
        newer = newer.model_copy(
            update={"from_": older.from_ - timedelta(hours=1), "generated_at": utcnow()}
        )
        stored = await hq.write(partial(store, report=newer))
        assert stored.resolved == 1
        assert (await hq.read(recon_view))["open_mismatches"] == 0


async def test_scheduled_digests_go_out_once_per_slot(db_url: str, broker: Mosquitto) -> None:
    async with HqStore(db_url) as hq:
        await add_refunds(hq, [refund_data("R-1", created_at=utcnow() - timedelta(hours=1))])
    async with (
        Observer(broker.port, [f"{BASE}/recon/digest"]) as gw,
        instances(db_url, broker.port, 2, recon_interval_s=0.2) as services,
    ):
        digests = await gw.wait_for(lambda: len(gw.messages) >= 3 and gw.messages)
        parsed = [Digest.model_validate_json(m.payload) for m in digests]
        assert len({d.to for d in parsed}) == len(parsed)  # one digest per slot
        assert all(m.qos == 1 for m in digests)
        assert all([e.return_id for e in d.refunds] == ["R-1"] for d in parsed)
        assert all(d.to - d.from_ == timedelta(days=1) for d in parsed)
        assert sum(s.counters["recon_digests_sent"] for s in services) >= 3


async def test_digest_and_inject_from_the_command_line(
    db_url: str, broker: Mosquitto, tmp_path: Path
) -> None:
    async with HqStore(db_url) as hq:
        await add_refunds(hq, [refund_data("R-1", created_at=utcnow() - timedelta(hours=1))])
    planted = cli(db_url, "inject", "amount-mismatch", "--store", STORE, "--units", "5")
    assert planted.returncode == 0, planted.stderr
    assert json.loads(planted.stdout)["changes"]["total"] == {"before": "41.80", "after": "41.85"}
    refused = cli(db_url, "inject", "unconfirmed", "--store", STORE)
    assert refused.returncode == 1
    assert "failure-rate" in refused.stderr
    async with Observer(broker.port, [f"{BASE}/recon/digest"]) as gw:
        sent = await asyncio.to_thread(
            cli, db_url, "digest", "--store", STORE, "--broker-port", str(broker.port)
        )
        assert sent.returncode == 0, sent.stderr
        (msg,) = await gw.wait_for(lambda: gw.messages)
    digest = Digest.model_validate_json(msg.payload)
    assert digest.digest_id in sent.stdout
    (entry,) = digest.refunds
    assert (entry.return_id, entry.total) == ("R-1", Decimal("41.85"))
    dry = cli(db_url, "digest", "--store", STORE, "--gateway", GW, "--dry-run")
    assert Digest.model_validate_json(dry.stdout).refunds[0].total == Decimal("41.85")
    mapped = cli(db_url, "erp-map", "--profile", "netsuite", "--return-id", "R-1")
    assert json.loads(mapped.stdout)["createdFrom"] == {"id": "S-1"}
