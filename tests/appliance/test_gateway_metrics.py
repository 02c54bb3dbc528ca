"""The gateway's /metrics on a real scrape of the running program with traffic: every
outcome counted where it happened, the outbox, HQ link, devices, lanes and disk read at the
scrape, `promtool check metrics` clean and no `_created` series; the example alert rules
under promtool, querying only what the gateway exports; and docs/monitoring.md naming
every family.
"""

from __future__ import annotations

import base64
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.appliance.store_rig import LANE, SCANNER, Store, close_store, open_store
from tests.contract.peers import Register, contract_sale
from tests.core.daemon import ROOT
from tests.promtool import check_metrics, check_rules, run_rule_tests, samples

DOCS = ROOT / "docs"
RULES = DOCS / "prometheus" / "gateway-alerts.yml"
DEVICE = (("device", SCANNER), ("kind", "serial"), ("lane", LANE))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    shop = open_store(tmp_path_factory.mktemp("store"))
    try:
        yield shop
    finally:
        close_store(shop)


def scrape(store: Store) -> str:
    with urllib.request.urlopen(f"{store.base}/metrics", timeout=20) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        return str(r.read().decode())


def status_of(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def traffic(store: Store) -> None:
    """Two refunds, a retried one, a refused one; a sale sent twice, one that conflicts;
    bad credentials, a bad token and none; a scan."""
    store.sell_and_refund("S-1", "refund-1")
    store.sell_and_refund("S-2", "refund-2")

    async def more(register: Register) -> None:
        again = {"sale_id": "S-1", "lines": [{"line_id": "1", "quantity": 1}]}
        status, _ = await register.refund(again, "refund-1")  # the register retries
        assert status == 201
        too_many = {"sale_id": "S-2", "lines": [{"line_id": "1", "quantity": 5}]}
        status, problem = await register.refund(too_many, "refund-3")
        assert status == 409, problem
        sale = contract_sale("S-5")
        for expected in (201, 200):  # sent again, the same: the sale as held
            status, _ = await register.call("POST", "/v1/sales", sale)
            assert status == expected
        changed = contract_sale("S-5", unit_price="29.99")
        status, _ = await register.call("POST", "/v1/sales", changed)
        assert status == 409

    store.call(more)
    wrong_secret = urllib.request.Request(
        f"{store.base}/oauth/token",
        data=b"grant_type=client_credentials",
        headers={
            "Authorization": "Basic "
            + base64.b64encode(f"{store.register.client_id}:not-the-secret".encode()).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert status_of(wrong_secret) == 401
    garbage = urllib.request.Request(
        f"{store.base}/v1/refunds/R-0042-X", headers={"Authorization": "Bearer not.a.jwt"}
    )
    assert status_of(garbage) == 401
    assert status_of(urllib.request.Request(f"{store.base}/v1/refunds/R-0042-X")) == 401
    store.scanner.scan("0123456789012")
    store.wait_ready(
        lambda r: r["outbox"]["pending"] == 0 and r["last_hq_ack_at"] is not None,
        "every event acked",
    )
    store.wait_scanned(1)


def test_a_scrape_with_traffic_counts_everything_and_passes_promtool(store: Store) -> None:
    traffic(store)
    started = time.time()
    text = scrape(store)
    got = samples(text)
    assert "_created" not in text
    check = check_metrics(text)
    assert check.returncode == 0, check.stdout + check.stderr

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("edge_refund_requests_total", outcome="success") == 3
    assert value("edge_refund_requests_total", outcome="quantity-exceeds-returnable") == 1
    assert value("edge_sale_requests_total", outcome="success") == 4
    assert value("edge_sale_requests_total", outcome="sale-conflict") == 1
    assert value("edge_idempotent_replays_total", operation="refund") == 1
    assert value("edge_idempotent_replays_total", operation="sale") == 1
    assert value("edge_refunds_total", kind="receipt", offline="false") == 2
    assert value("edge_refund_processing_seconds_count") == 4  # the replay and refusal too
    assert value("edge_auth_failures_total", reason="bad-client-credentials") == 1
    assert value("edge_auth_failures_total", reason="invalid-token") == 1
    assert value("edge_auth_failures_total", reason="missing-token") == 1
    assert value("edge_auth_failures_total", reason="expired-token") == 0
    assert value("edge_hq_link_up") == 1
    assert 0 <= value("edge_hq_last_ack_age_seconds") < 30
    assert value("edge_outbox_depth") == 0
    assert value("edge_outbox_oldest_pending_age_seconds") == 0
    assert value("edge_outbox_high_water") == 10_000
    assert value("edge_device_up", **dict(DEVICE)) == 1
    assert value("edge_devices_up", kind="serial") == 1
    assert value("edge_devices_configured", kind="serial") == 1
    assert value("edge_devices_configured", kind="keyboard") == 0
    assert value("edge_lane_scans_total", lane=LANE) == 1
    assert started - 60 < value("edge_lane_last_scan_timestamp_seconds", lane=LANE) <= started
    assert value("edge_ledger_writable") == 1
    assert value("edge_ready") == 1
    free = shutil.disk_usage(store.gateway.workdir).free
    assert abs(value("edge_disk_free_bytes") - free) < 1 << 30
    assert value("edge_ledger_size_bytes") > 0
    assert value("edge_gateway_info", store="0042", gateway="gw-01", version="0.1.0") == 1
    assert value("edge_alerts_open", severity="critical") == 0
    assert ("process_start_time_seconds", ()) in got


def test_offline_the_link_and_the_queue_show_at_the_next_scrape(store: Store) -> None:
    store.broker.stop()
    try:
        store.wait_ready(lambda r: not r["hq_link"]["online"], "the link offline")
        went = time.time()
        refund = store.sell_and_refund("S-9", "refund-9")
        assert refund["offline"] is True
        store.scanner.unplug()
        store.wait_ready(lambda r: r["devices"][SCANNER]["state"] != "connected", "unplugged")
        text = scrape(store)
        got = samples(text)
        assert got[("edge_hq_link_up", ())] == 0
        assert went - 30 < got[("edge_hq_link_state_since_timestamp_seconds", ())] <= went
        assert got[("edge_outbox_refunds_queued", ())] == 1
        assert got[("edge_outbox_depth", ())] >= 2  # the sale and the refund, at least
        assert got[("edge_outbox_oldest_pending_age_seconds", ())] > 0
        assert got[("edge_device_up", DEVICE)] == 0
        assert got[("edge_devices_up", (("kind", "serial"),))] == 0
        check = check_metrics(text)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        store.broker.start()
    store.wait_ready(
        lambda r: r["hq_link"]["online"] and r["outbox"]["pending"] == 0, "HQ back, all acked"
    )
    assert samples(scrape(store))[("edge_outbox_refunds_queued", ())] == 0


def test_the_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    check = check_rules(RULES)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "11 rules found" in check.stdout
    unit = run_rule_tests(RULES.with_name("gateway-alerts.test.yml"))
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "SUCCESS" in unit.stdout
    tests = RULES.with_name("gateway-alerts.test.yml").read_text()
    for rule in _rules():
        assert f"alertname: {rule['alert']}" in tests, f"{rule['alert']} has no unit test"


def test_the_rules_and_the_docs_name_only_what_a_gateway_exports(store: Store) -> None:
    exported = {
        family.name
        for family in text_string_to_metric_families(scrape(store))
        if family.name.startswith("edge_")
    }
    # a family is exported before its first sample (a task's restarts before the first)
    used = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for rule in _rules()
        for name in re.findall(r"\b(edge_[a-z0-9_]+)", rule["expr"])
    }
    assert used, "no rule queries the gateway"
    assert used - exported == set(), "rules query series the gateway does not export"
    for wanted in ("edge_hq_link_up", "edge_outbox_oldest_pending_age_seconds"):
        assert wanted in used
    guide = (DOCS / "monitoring.md").read_text()
    undocumented = {name for name in exported if f"`{name}" not in guide}
    assert undocumented == set(), f"docs/monitoring.md does not list {sorted(undocumented)}"
    assert "gateway-alerts.yml" in guide


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]
