"""What the fleet view keeps for the page: since when, alerts raised and cleared, the bounded
health history; and the `--http` option's forms."""

from __future__ import annotations

import pytest

from edge.contract.payloads import dumps
from edge.contract.timefmt import duration
from edge.hq.fleet import FleetView, HealthRing
from edge.hq.fleet_page import history_chart, select_rows
from edge.hq.web import parse_http
from edge.mqtt.client import Message
from tests.hqlink.harness import PREFIX

GW = f"{PREFIX}/0042/gw-01"


def msg(leaf: str, body: object, retain: bool = False) -> Message:
    return Message(f"{GW}/{leaf}", dumps(body), 1, retain)


def test_since_changes_with_the_state_or_the_session_only() -> None:
    fleet = FleetView(PREFIX)
    fleet.apply(msg("state", {"state": "online", "bd_seq": 1}), 100.0)
    fleet.apply(msg("state", {"state": "online", "bd_seq": 1}), 150.0)  # the same birth again
    view = fleet.get("0042", "gw-01")
    assert view is not None
    assert view.state_since == 100.0
    fleet.apply(msg("state", {"state": "offline", "bd_seq": 1}), 200.0)
    assert view.state_since == 200.0
    fleet.apply(msg("state", {"state": "online", "bd_seq": 2}), 300.0)
    assert fleet.rows(310.0)[0]["state_age_s"] == 10.0


def test_a_retained_birth_takes_since_from_the_gateways_own_connect_time() -> None:
    fleet = FleetView(PREFIX)
    fleet.apply(msg("state", {"state": "online", "bd_seq": 3}, retain=True), 1_800_000_000.0)
    connected = "2027-01-15T07:00:00.000Z"  # 1_800_000_000 is 08:00:00 that day
    fleet.apply(msg("health", {"link": {"connected_since": connected}}), 1_800_000_001.0)
    assert fleet.rows(1_800_000_002.0)[0]["state_since"] == connected


def test_alerts_are_logged_once_whether_health_or_the_alert_comes_first() -> None:
    fleet = FleetView(PREFIX)
    raised = {
        "alert": "disk-low",
        "severity": "critical",
        "detail": "3%",
        "at": "2027-01-01T00:00:00Z",
    }
    fleet.apply(msg("health", {"alerts_open": [{**raised, "subject": ""}]}), 10.0)
    fleet.apply(msg("alerts", {**raised, "state": "raised"}), 11.0)
    cleared = {**raised, "at": "2027-01-01T00:05:00Z", "state": "cleared"}
    fleet.apply(msg("alerts", cleared), 12.0)
    fleet.apply(msg("health", {"alerts_open": []}), 13.0)
    detail = fleet.get("0042", "gw-01")
    assert detail is not None
    log = [(a["state"], a["alert"], a["at"]) for a in detail.detail(14.0)["recent_alerts"]]
    assert log == [
        ("cleared", "disk-low", "2027-01-01T00:05:00.000Z"),
        ("raised", "disk-low", "2027-01-01T00:00:00.000Z"),
    ]
    assert detail.open_by_severity()["critical"] == 0


def test_the_health_ring_keeps_the_newest_points_in_order() -> None:
    ring = HealthRing(size=3)
    for n in range(5):
        ring.append(float(n), n * 10, None if n == 3 else n * 1.5)
    assert ring.points() == [(2.0, 20.0, 3.0), (3.0, 30.0, None), (4.0, 40.0, 6.0)]
    fleet = FleetView(PREFIX)
    for n in range(130):
        fleet.apply(msg("health", {"outbox": {"pending": n, "oldest_pending_age_s": 1.0}}), n)
    history = fleet.get("0042", "gw-01").detail(130.0)["history"]  # type: ignore[union-attr]
    assert len(history) == 120
    assert [history[0]["depth"], history[-1]["depth"]] == [10.0, 129.0]
    chart = history_chart(history, "depth", "Outbox depth", "depth", "")
    assert chart.count("<polyline") == 1
    assert "now 129" in chart


def test_the_oldest_pending_age_grows_while_a_gateway_is_silent() -> None:
    fleet = FleetView(PREFIX)
    fleet.apply(msg("health", {"outbox": {"pending": 4, "oldest_pending_age_s": 60.0}}), 1000.0)
    row = fleet.rows(1600.0)[0]
    assert (row["oldest_pending_age_s"], row["oldest_pending_now_s"]) == (60.0, 660.0)
    assert duration(row["oldest_pending_now_s"]) == "11 min"
    assert duration(90_000) == "1 d 1 h"


def test_the_first_render_sorts_with_unknown_values_last_and_filters() -> None:
    rows = [
        {"store_id": "a", "state": "online", "outbox_pending": 5, "open_alerts": 0},
        {"store_id": "b", "state": "offline", "outbox_pending": None, "open_alerts": 2},
        {"store_id": "c", "state": "online", "outbox_pending": 1, "open_alerts": 0},
    ]
    desc = select_rows(rows, "outbox_pending", "desc", "all")
    assert [r["store_id"] for r in desc] == ["a", "c", "b"]
    assert [r["store_id"] for r in select_rows(rows, "store_id", "asc", "alerting")] == ["b"]
    assert [r["store_id"] for r in select_rows(rows, "store_id", "desc", "online")] == ["c", "a"]


def test_the_http_option() -> None:
    assert parse_http("127.0.0.1:8090") == ("127.0.0.1", 8090)
    assert parse_http("9100") == ("127.0.0.1", 9100)
    assert parse_http("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_http("[::1]:8090") == ("::1", 8090)
    assert parse_http("off") is None
    assert parse_http("0") is None
    with pytest.raises(ValueError):
        parse_http("127.0.0.1:99999")
    with pytest.raises(ValueError):
        parse_http("localhost:http")
