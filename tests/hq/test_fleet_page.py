"""The fleet page in a real browser (Debian's chromium, headless, via chromium-driver): rows,
sorting, filtering, refreshing itself, and a store's page with its alerts and chart.

One broker, one HQ fleet side and one browser for the module; simulated gateways publish
birth, health and alerts per the contract.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from edge.hq.fleet import FleetView
from tests.chromium import chromium, wait
from tests.hq.fleet_support import FleetHq, SimGateway, png_size
from tests.hqlink.broker import Mosquitto

NASTY = '<img src=x id="xss" onerror="document.title=1">'
ROWS_JS = """
return [...document.querySelectorAll('#fleet tbody tr')].map(tr => ({
  cells: [...tr.cells].map(c => c.textContent),
  titles: [...tr.querySelectorAll('time')].map(t => t.title),
}));
"""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path_factory.mktemp("broker"))
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture(scope="module")
def hq(broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetHq]:
    service = FleetHq(broker.port, tmp_path_factory.mktemp("hq"), refresh_s=0.5).start()
    yield service
    service.stop()


def _ready(fleet: FleetView) -> bool:
    views = {s: fleet.get(s, "gw-01") for s in ("0001", "0002", "0003", "0004", "0005")}
    return (
        all(v is not None for v in views.values())
        and views["0003"] is not None
        and views["0003"].state == "offline"
        and views["0004"] is not None
        and len(views["0004"].history) == 4
        and len(views["0004"].alert_log) == 3
        and all(views[s].health is not None for s in ("0001", "0002", "0003"))  # type: ignore[union-attr]
    )


@pytest.fixture(scope="module")
def gateways(broker: Mosquitto, hq: FleetHq) -> Iterator[dict[str, SimGateway]]:
    gws = {s: SimGateway(broker.port, s) for s in ("0001", "0002", "0003", "0004", "0005")}
    gws["0001"].connect().health(3, 40.0)
    gws["0002"].connect().health(0, None)
    gws["0003"].connect("1.3.9").health(7, 900.0)
    gws["0003"].die()
    busy = gws["0004"].connect()
    busy.alert("outbox-high-water", "warning", "1200 events wait for HQ")
    busy.health(10, 100.0)
    busy.alert("lane-scanner-down", "critical", "lane 3 scanner unplugged")
    busy.health(40, 1000.0)
    busy.alert("outbox-high-water", "warning", "back under the mark", cleared=True)
    busy.health(80, 2500.0)
    busy.health(120, 4000.0)
    gws["0005"].connect(NASTY)
    hq.wait_for(_ready)
    yield gws
    for gw in gws.values():
        gw.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    yield driver
    driver.quit()


def rows(driver: WebDriver) -> list[dict[str, Any]]:
    """The table as shown, read in one script (the page re-renders it while we look)."""
    return list(driver.execute_script(ROWS_JS))


def stores(driver: WebDriver) -> list[str]:
    return [r["cells"][0] for r in rows(driver)]


def click(driver: WebDriver, css: str) -> None:
    def clicked(d: WebDriver) -> bool:
        d.find_element(By.CSS_SELECTOR, css).click()
        return True

    wait(driver, clicked, f"could not click {css}")


def open_fleet(driver: WebDriver, hq: FleetHq, query: str = "") -> None:
    driver.get(f"{hq.url}/{query}")
    wait(driver, lambda d: len(rows(d)) > 0, "the fleet table stayed empty")


def test_the_page_lists_every_gateway_with_its_state(
    browser: WebDriver, hq: FleetHq, gateways: dict[str, SimGateway]
) -> None:
    open_fleet(browser, hq)
    table = {r["cells"][0]: r for r in rows(browser)}
    assert sorted(table) == ["0001", "0002", "0003", "0004", "0005"]
    assert {s: r["cells"][2] for s, r in table.items()} == {
        "0001": "online",
        "0002": "online",
        "0003": "offline",
        "0004": "online",
        "0005": "online",
    }
    assert table["0001"]["cells"][5] == "3"
    assert table["0004"]["cells"][7] == "1"  # one alert still open
    assert table["0003"]["cells"][8] == "1.3.9"
    assert re.fullmatch(r"\d+ s ago", table["0003"]["cells"][3]), table["0003"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", t) for t in table["0001"]["titles"][:2])
    summary = {k: browser.find_element(By.ID, f"sum-{k}").text for k in ("online", "offline")}
    assert summary == {"online": "4", "offline": "1"}
    assert browser.find_element(By.ID, "sum-alerting").text == "1"
    # a version string is text, never markup
    assert table["0005"]["cells"][8] == NASTY
    assert browser.find_elements(By.ID, "xss") == []


def test_clicking_a_header_sorts_by_that_column(
    browser: WebDriver, hq: FleetHq, gateways: dict[str, SimGateway]
) -> None:
    open_fleet(browser, hq)
    assert stores(browser) == ["0001", "0002", "0003", "0004", "0005"]
    click(browser, 'th[data-key="outbox_pending"]')
    header = 'th[data-key="outbox_pending"]'
    wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, header).get_attribute("aria-sort") == "ascending",
        "not sorted ascending",
    )
    assert stores(browser) == ["0002", "0001", "0003", "0004", "0005"]  # unknown depth last
    click(browser, header)
    wait(
        browser,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, header).get_attribute("aria-sort") == "descending"
        ),
        "not sorted descending",
    )
    assert stores(browser) == ["0004", "0003", "0001", "0002", "0005"]
    assert "sort=outbox_pending" in browser.current_url


def test_the_state_filter_hides_other_rows(
    browser: WebDriver, hq: FleetHq, gateways: dict[str, SimGateway]
) -> None:
    open_fleet(browser, hq)
    click(browser, "#filter-offline")
    wait(browser, lambda d: stores(d) == ["0003"], "offline filter")
    assert [r["cells"][2] for r in rows(browser)] == ["offline"]
    assert browser.find_element(By.ID, "shown").text == "1 of 5 gateways shown"
    click(browser, "#filter-alerting")
    wait(browser, lambda d: stores(d) == ["0004"], "alerting filter")
    click(browser, "#filter-online")
    wait(browser, lambda d: len(stores(d)) == 4 and "0003" not in stores(d), "online filter")
    click(browser, "#filter-all")
    wait(browser, lambda d: len(stores(d)) == 5, "all")


def test_the_page_is_readable_without_javascript(
    hq: FleetHq, gateways: dict[str, SimGateway]
) -> None:
    with urllib.request.urlopen(f"{hq.url}/?state=offline&sort=store_id&dir=asc") as resp:
        page = resp.read().decode()
        csp = resp.headers["Content-Security-Policy"]
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr ") == 1
    assert 'data-state="offline"' in body
    assert ">0003</a>" in body
    assert "script-src 'nonce-" in csp
    with urllib.request.urlopen(f"{hq.url}/") as resp:
        everything = resp.read().decode()
    assert everything.split("<tbody>", 1)[1].count("<tr ") == 5
    assert "&lt;img src=x" in everything
    assert NASTY not in everything  # escaped in the table, \u003c-escaped in the JSON


def test_a_stores_page_shows_its_alerts_and_health_history(
    browser: WebDriver, hq: FleetHq, gateways: dict[str, SimGateway], tmp_path: Path
) -> None:
    open_fleet(browser, hq)
    shot = tmp_path / "fleet.png"
    browser.save_screenshot(str(shot))
    click(browser, 'a[href="stores/0004/gw-01"]')
    wait(browser, lambda d: "0004" in d.find_element(By.TAG_NAME, "h1").text, "detail page")
    assert browser.current_url == f"{hq.url}/stores/0004/gw-01"
    open_alerts = browser.find_element(By.ID, "open-alerts").text
    assert "lane-scanner-down" in open_alerts
    assert "critical" in open_alerts
    assert "outbox-high-water" not in open_alerts
    recent = browser.execute_script(
        "return [...document.querySelectorAll('#recent-alerts tbody tr')]"
        ".map(tr => [...tr.cells].slice(0, 2).map(c => c.textContent))"
    )
    assert recent == [
        ["cleared", "outbox-high-water"],
        ["raised", "lane-scanner-down"],
        ["raised", "outbox-high-water"],
    ]
    points = browser.find_element(
        By.CSS_SELECTOR, 'svg[data-series="depth"] polyline'
    ).get_attribute("points")
    assert points is not None
    assert len(points.split()) == 4
    assert browser.find_element(By.CSS_SELECTOR, 'svg[data-series="oldest_s"] polyline')
    assert "scanner-1" in browser.find_element(By.ID, "devices").text
    detail = tmp_path / "store-0004.png"
    browser.save_screenshot(str(detail))
    for path in (shot, detail):
        data = path.read_bytes()
        width, height = png_size(data)
        assert (width, height) >= (800, 600), f"screenshot {path} is {width}x{height}"
        assert len(data) > 20_000, f"screenshot {path} looks blank ({len(data)} bytes)"


def test_the_page_updates_itself_when_a_gateway_goes_offline(
    browser: WebDriver, hq: FleetHq, gateways: dict[str, SimGateway]
) -> None:
    open_fleet(browser, hq)
    browser.execute_script("window.noReload = 'still the same page';")
    assert {r["cells"][0]: r["cells"][2] for r in rows(browser)}["0002"] == "online"
    gateways["0002"].die()
    wait(
        browser,
        lambda d: {r["cells"][0]: r["cells"][2] for r in rows(d)}["0002"] == "offline",
        "the page did not show 0002 offline",
    )
    assert browser.execute_script("return window.noReload") == "still the same page"
    wait(browser, lambda d: d.find_element(By.ID, "sum-offline").text == "2", "summary")
    assert browser.find_element(By.ID, "sum-online").text == "3"
