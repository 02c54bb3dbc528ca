"""HQ's /metrics: per-gateway series read from the fleet view at scrape time, checked by
`promtool check metrics`; the alert rules and their unit tests under promtool; and the
Grafana dashboard querying only what the service exports."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge.contract.payloads import dumps
from edge.hq.fleet import FleetView
from edge.hq.metrics import HqStats, exposition, hq_registry
from edge.mqtt.client import Message
from tests.core.daemon import ROOT
from tests.hq.fleet_support import FleetHq, SimGateway
from tests.hqlink.broker import Mosquitto, free_port
from tests.hqlink.harness import PREFIX
from tests.promtool import check_metrics as promtool_check_metrics
from tests.promtool import check_rules, run_rule_tests, samples

DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path_factory.mktemp("broker"))
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture(scope="module")
def hq(broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetHq]:
    service = FleetHq(broker.port, tmp_path_factory.mktemp("hq")).start()
    gws = [SimGateway(broker.port, s) for s in ("0042", "0043")]
    gws[0].connect()
    gws[0].alert("lane-scanner-down", "critical", "lane 3 scanner unplugged")
    gws[0].health(5, 30.0)
    gws[1].connect().health(0, None)
    gws[1].die()
    service.wait_for(
        lambda f: (
            (v := f.get("0042", "gw-01")) is not None
            and v.health is not None
            and v.alerts
            and (w := f.get("0043", "gw-01")) is not None
            and w.state == "offline"
        )
    )
    yield service
    for gw in gws:
        gw.close()
    service.stop()


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics") as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        return str(resp.read().decode())


def gw(store: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"store": store, "gateway": "gw-01", **more}.items()))


def test_metrics_show_every_gateway_and_pass_promtool(hq: FleetHq) -> None:
    text = scrape(hq.url)
    got = samples(text)
    assert got[("edge_hq_gateway_online", gw("0042"))] == 1
    assert got[("edge_hq_gateway_online", gw("0043"))] == 0
    assert got[("edge_hq_gateway_outbox_depth", gw("0042"))] == 5
    assert got[("edge_hq_gateway_outbox_depth", gw("0043"))] == 0
    assert 30 <= got[("edge_hq_gateway_oldest_pending_age_seconds", gw("0042"))] < 60
    assert got[("edge_hq_gateway_open_alerts", gw("0042", severity="critical"))] == 1
    assert got[("edge_hq_gateway_open_alerts", gw("0043", severity="critical"))] == 0
    assert 0 <= got[("edge_hq_gateway_last_health_age_seconds", gw("0042"))] < 60
    assert got[("edge_hq_fleet_gateways", (("state", "offline"),))] == 1
    assert got[("edge_hq_fleet_gateways", (("state", "online"),))] == 1
    assert got[("edge_hq_fleet_open_alerts", (("severity", "critical"),))] == 1
    # the service's own counters, as it counts them (none of these has happened yet)
    assert got[("edge_hq_events_received_total", (("outcome", "new"),))] == 0
    assert got[("edge_hq_acks_sent_total", (("status", "accepted"),))] == 0
    assert got[("edge_hq_storage_errors_total", ())] == 0
    assert got[("edge_hq_mqtt_connected", ())] == 1
    assert "_created" not in text
    check = promtool_check_metrics(text)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_scrape_of_ten_thousand_gateways_reads_the_fleet_view_then() -> None:
    fleet = FleetView(PREFIX)
    now = time.time()
    for n in range(10_000):
        base = f"{PREFIX}/{n:05d}/gw-01"
        fleet.apply(Message(f"{base}/state", dumps({"state": "online", "bd_seq": 1}), 1, True), now)
        health = {"outbox": {"pending": n % 7, "oldest_pending_age_s": 1.0}}
        fleet.apply(Message(f"{base}/health", dumps(health), 0, True), now)
    registry = hq_registry(HqStats(fleet, clock=lambda: now + 10))
    started = time.perf_counter()
    frozen = exposition(registry)  # what the handler does on the service's loop
    on_loop = time.perf_counter() - started
    text = generate_latest(frozen).decode()  # and this in a thread
    assert text.count("edge_hq_gateway_online{") == 10_000
    assert frozen.get_sample_value("edge_hq_fleet_outbox_depth") == sum(
        n % 7 for n in range(10_000)
    )
    age = frozen.get_sample_value(
        "edge_hq_gateway_oldest_pending_age_seconds", {"store": "00006", "gateway": "gw-01"}
    )
    assert age == 11.0  # the reported 1 s plus the 10 s since that report
    assert on_loop < 3.0, f"reading 10,000 gateways held the loop {on_loop:.2f} s"


def test_the_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    rules = DOCS / "prometheus" / "hq-alerts.yml"
    check = check_rules(rules)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "7 rules found" in check.stdout
    unit = run_rule_tests(rules.parent / "hq-alerts.test.yml")
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "SUCCESS" in unit.stdout
    tests = (rules.parent / "hq-alerts.test.yml").read_text()
    assert "alertname: EdgeGatewayOffline" in tests  # the offline-for-an-hour case is there


def test_the_grafana_dashboard_queries_only_exported_metrics(hq: FleetHq) -> None:
    dashboard = json.loads((DOCS / "grafana" / "fleet-dashboard.json").read_text())
    assert dashboard["uid"]
    assert dashboard["schemaVersion"] >= 30
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("type") == "query"]
    assert len(exprs) >= 10
    used = {m for e in exprs for m in re.findall(r"\b(edge_hq_[a-z0-9_]+|up)\b", e)}
    exported = {s.name for f in text_string_to_metric_families(scrape(hq.url)) for s in f.samples}
    exported.add("up")  # Prometheus's own, per scrape target
    assert used - exported == set()
    for wanted in (
        "edge_hq_gateway_online",
        "edge_hq_gateway_outbox_depth",
        "edge_hq_gateway_oldest_pending_age_seconds",
        "edge_hq_gateway_open_alerts",
    ):
        assert wanted in used, f"the dashboard does not show {wanted}"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]


async def test_hq_run_serves_the_page_and_metrics_promtool_accepts(
    tmp_path: Path, broker: Mosquitto
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["EDGE_DATA_DIR"] = str(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge", "hq", "--db", str(tmp_path / "hq.sqlite3"),
        "--broker-port", str(broker.port), "--instance", "hq-cli", "run",
        "--http", f"127.0.0.1:{port}",
        cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stderr is not None
    log: list[str] = []
    try:
        async with asyncio.timeout(30):
            while "fleet page and /metrics on" not in "".join(log):
                line = await proc.stderr.readline()
                assert line, f"hq run ended before serving HTTP: {''.join(log)}"
                log.append(line.decode())
        url = f"http://127.0.0.1:{port}"
        health = json.loads(await asyncio.to_thread(_get, f"{url}/healthz"))
        assert health["status"] == "ok"
        assert health["instance"] == "hq-cli"
        page = await asyncio.to_thread(_get, f"{url}/")
        assert '<table id="fleet"' in page
        text = await asyncio.to_thread(scrape, url)
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"edge_hq_gateway_online", "edge_hq_fleet_gateways", "edge_hq_acks_sent"} <= names
        check = await asyncio.to_thread(promtool_check_metrics, text)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), 30)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0, "".join(log) + rest.decode()


def _get(url: str) -> str:
    with urllib.request.urlopen(url) as resp:
        return str(resp.read().decode())
