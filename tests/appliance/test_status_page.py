"""The status page at `/` in a real browser (Debian's chromium, headless): the verdict in
words and colour, in the screenshot too, for a working store, one that lost HQ and a
scanner, and one whose ledger cannot write; the page reloading itself; every time in the
store's zone; the latest refunds without a token or card data; every value escaped.

One store (broker, HQ, the gateway program with a scanner) and one browser for the module;
the tests run in order, each leaving the store as the next expects it.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from edge.api.status_page import render
from edge.api.status_view import DiskFacts, Facts, LinkFacts
from edge.api.verdict import judge
from edge.contract.payloads import AlertMsg
from edge.errors import ConfigError
from edge.ledger.db import apply_migrations, open_sync
from edge.ledger.hq_sync import Ack, apply_acks
from edge.ledger.outbox import Origin, OutboxStats, append_events
from edge.ledger.recon import OpenCounts
from edge.ledger.status import (
    DepthPoint,
    LedgerStatus,
    OutboxGlance,
    PageStatus,
    RecentRefund,
    ReportGlance,
    depth_history,
    outbox_glance,
)
from edge.settings import load_settings
from tests.appliance.store_rig import LANE, SCANNER, ZONE, Store, close_store, open_store
from tests.chromium import chromium, wait
from tests.hq.fleet_support import png_size

GREEN, AMBER, RED = (26, 127, 55), (212, 167, 44), (207, 34, 46)
CARD_DATA = ("tok_9f8e7d6c", "A1B2C3", "4242", "visa", "payment_token")
PIXEL_JS = """
const [png, x, y, done] = arguments;
const img = new Image();
img.onload = () => {
  const canvas = document.createElement('canvas');
  canvas.width = img.width; canvas.height = img.height;
  const g = canvas.getContext('2d');
  g.drawImage(img, 0, 0);
  done(Array.from(g.getImageData(x, y, 1, 1).data).slice(0, 3));
};
img.onerror = () => done(null);
img.src = 'data:image/png;base64,' + png;
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    shop = open_store(tmp_path_factory.mktemp("store"))
    try:
        shop.sell_and_refund("S-1", "refund-1")
        shop.sell_and_refund("S-2", "refund-2")
        shop.scanner.scan("0123456789012")
        shop.wait_scanned(1)
        shop.wait_ready(
            lambda r: r["outbox"]["pending"] == 0 and r["hq_link"]["online"],
            "every event acked",
        )
        yield shop
    finally:
        close_store(shop)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    yield driver
    driver.quit()


def headline(driver: WebDriver) -> str:
    return str(driver.find_element(By.ID, "headline").text)


def verdict_colour(driver: WebDriver) -> str:
    return str(
        driver.execute_script(
            "return getComputedStyle(document.getElementById('verdict')).backgroundColor"
        )
    )


def screenshot_shows(driver: WebDriver, path: Path, rgb: tuple[int, int, int]) -> None:
    """Save a screenshot and check, in the image itself, that the verdict box has `rgb`
    (decoded by the browser on a blank page: the status page's policy allows no image)."""
    box = driver.find_element(By.ID, "verdict").rect
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    width, height = png_size(data)
    assert (width, height) >= (800, 600), f"screenshot {path} is {width}x{height}"
    driver.get("about:blank")
    pixel = driver.execute_async_script(
        PIXEL_JS, base64.b64encode(data).decode(), int(box["x"]) + 6, int(box["y"]) + 6
    )
    assert pixel == list(rgb), f"the verdict in {path.name} is {pixel}, not {rgb}"


def local_clock(stamp: str) -> str:
    return datetime.fromisoformat(stamp).astimezone(ZoneInfo(ZONE)).strftime("%H:%M")


def test_a_working_store_says_working_in_green(
    browser: WebDriver, store: Store, tmp_path: Path
) -> None:
    browser.get(f"{store.base}/?refresh=600")
    assert headline(browser) == "Working"
    assert verdict_colour(browser) == "rgb(26, 127, 55)"
    assert browser.find_element(By.ID, "advice").text == "Nothing to do."
    assert browser.title.startswith("Working")
    assert browser.find_element(By.ID, "zone").text == ZONE
    link = browser.find_element(By.ID, "link").text
    assert "online" in link
    assert "ago)" in link  # the last ack from HQ, with its age
    outbox = browser.find_element(By.ID, "outbox").text
    assert "Events waiting for HQ 0" in outbox
    assert "Oldest waiting none" in outbox
    points = browser.find_element(By.CSS_SELECTOR, 'svg[data-series="depth"] polyline')
    assert len((points.get_attribute("points") or "").split()) == 37  # 6 h in 10 min steps
    devices = browser.find_element(By.ID, "devices").text
    assert f"{SCANNER} serial scanner {LANE} connected" in devices
    lanes = browser.execute_script(
        "return [...document.querySelectorAll('#lanes tbody td')].map(td => td.textContent)"
    )
    assert lanes[:3] == [LANE, SCANNER, "1"]
    assert lanes[3].endswith("ago)")
    refunds = browser.execute_script(
        "return [...document.querySelectorAll('#refunds tbody tr')]"
        ".map(tr => [...tr.cells].map(td => td.textContent))"
    )
    newest = store.refunds[-1]
    assert [r[1] for r in refunds] == [r["return_id"] for r in reversed(store.refunds)]
    assert refunds[0][2:5] == ["receipt", f"{newest['total']} USD", "card"]
    assert refunds[0][5].startswith(newest["status"])
    created = datetime.fromisoformat(newest["created_at"].replace("Z", "+00:00"))
    assert refunds[0][0] == created.astimezone(ZoneInfo(ZONE)).strftime("%H:%M")
    assert "2 refunds today" in browser.find_element(By.ID, "refund-counts").text
    page = browser.page_source
    for secret in CARD_DATA:
        assert secret not in page, f"{secret} is on the page"
    screenshot_shows(browser, tmp_path / "working.png", GREEN)
    with pytest.raises(urllib.error.HTTPError) as refused:
        store.get("/?refresh=soon")
    assert refused.value.code == 422
    assert json.loads(refused.value.read())["errors"] == [
        {"field": "refresh", "message": "whole seconds, up to 6 digits"}
    ]


def test_the_page_reloads_itself_and_turns_amber_when_hq_and_a_scanner_are_lost(
    browser: WebDriver, store: Store, tmp_path: Path
) -> None:
    browser.get(f"{store.base}/?refresh=2")
    assert headline(browser) == "Working"
    browser.execute_script("window.sameDocument = true")
    store.broker.stop()
    offline = store.wait_ready(lambda r: not r["hq_link"]["online"], "the link offline")
    refund = store.sell_and_refund("S-3", "refund-3")
    assert refund["offline"] is True
    store.scanner.unplug()
    store.wait_ready(lambda r: r["devices"][SCANNER]["state"] != "connected", "scanner gone")
    since = local_clock(offline["hq_link_since"])
    wait(
        browser,
        lambda d: "disconnected" in headline(d),
        "the page never showed the scanner lost",
        timeout=20,
    )
    assert browser.execute_script("return window.sameDocument") is None  # it reloaded
    text = headline(browser)
    assert text.startswith(f"Degraded: offline to HQ since {since}, ")
    # the sale and the refund of S-3 wait for HQ; one of them is a refund
    assert ", 1 refund queued; " in text
    assert f"serial scanner {SCANNER} (lane {LANE}) disconnected since " in text
    assert verdict_colour(browser) == "rgb(212, 167, 44)"
    advice = browser.find_element(By.ID, "advice").text
    assert "Refunds go on" in advice
    assert "Check the cable" in advice
    assert "offline" in browser.find_element(By.ID, "refunds").text  # the queued refund
    screenshot_shows(browser, tmp_path / "degraded.png", AMBER)
    store.broker.start()
    store.wait_ready(
        lambda r: r["hq_link"]["online"] and r["outbox"]["pending"] == 0, "HQ back, all acked"
    )


def test_a_ledger_that_cannot_write_says_failing_in_red(
    browser: WebDriver, store: Store, tmp_path: Path
) -> None:
    """Another process holds the ledger's write lock: the gateway's writes time out, as
    they fail on a full disk; the page and /metrics say so, and it recovers by itself."""
    holder = sqlite3.connect(store.gateway.workdir / "data" / "ledger.sqlite3", timeout=5)
    holder.execute("BEGIN IMMEDIATE")
    scraped: dict[str, str] = {}
    scrape = threading.Thread(target=lambda: scraped.update(text=store.get("/metrics")))
    try:
        scrape.start()
        browser.get(f"{store.base}/?refresh=600")
        assert headline(browser) == "Failing: the ledger cannot write (disk full?)"
        assert verdict_colour(browser) == "rgb(207, 34, 46)"
        advice = browser.find_element(By.ID, "advice").text
        assert "503 storage-unavailable" in advice
        assert "cannot write" in browser.find_element(By.ID, "storage").text
        scrape.join(20)
        assert "edge_ledger_writable 0.0" in scraped["text"]
        screenshot_shows(browser, tmp_path / "failing.png", RED)
    finally:
        holder.rollback()
        holder.close()
    browser.get(f"{store.base}/?refresh=600")
    assert not headline(browser).startswith("Failing")  # writable again
    with urllib.request.urlopen(f"{store.base}/metrics", timeout=20) as r:
        assert "edge_ledger_writable 1.0" in r.read().decode()


# ---- rendering, with no browser: every value is text ----------------------------------

NASTY = '<img src=x onerror="alert(1)">'


def _facts(**changed: Any) -> Facts:
    now = datetime(2026, 11, 22, 10, 45, tzinfo=UTC)
    stats = OutboxStats(3, 1, "2026-11-22T10:30:00.000Z", 40, None)
    glance = OutboxGlance(3, 1, now - timedelta(minutes=15), None)
    ledger = LedgerStatus(stats, 1, 1)
    counts = OpenCounts({"amount": 1}, {"rounding": 1}, 0)
    refund = RecentRefund(
        f"R-0001-{NASTY}", now, "receipt", "pending", True, Decimal("17.09"), "USD", ("card",)
    )
    page = PageStatus(
        ledger,
        glance,
        [DepthPoint(now - timedelta(minutes=10), 1), DepthPoint(now, 3)],
        [refund],
        1,
        counts,
        ReportGlance(f"RP-{NASTY}", now, 10, 9, 1),
    )
    base: dict[str, Any] = {
        "now": now,
        "zone": ZoneInfo("Europe/Berlin"),
        "zone_name": "Europe/Berlin",
        "store_id": "0001",
        "gateway_id": "gw-01",
        "version": "1.0",
        "uptime_s": 3600.0,
        "ready": True,
        "writable": True,
        "database_detail": "writable",
        "storage_failed_since": None,
        "checks": {},
        "link": LinkFacts(True, False, f"offline: {NASTY}", now - timedelta(minutes=3), None),
        "high_water": 10_000,
        "disk": DiskFacts(Path("/var/lib/edge-gateway"), 14_200_000_000, 31_000_000_000, 812_000),
        "devices": [],
        "lanes": [],
        "alerts": [AlertMsg(alert="x", severity="critical", detail=NASTY, subject=NASTY, at=now)],
        "auth_failures": {},
        "tls_fingerprint": f"AB:{NASTY}",
        "outbox": glance,
        "ledger": ledger,
        "mismatches": counts,
        "page": page,
    }
    return Facts(**{**base, **changed})


def test_every_value_on_the_page_is_escaped_text() -> None:
    facts = _facts()
    page = render(facts, judge(facts), refresh_s=30, nonce="n0nce")
    assert NASTY not in page
    # the link state, the critical alert in the headline and in its table (detail and
    # subject), the Return ID, the report and the fingerprint
    assert page.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;") == 7
    assert "Degraded: offline to HQ since 11:42, 1 refund queued;" in page  # Berlin, UTC+1
    assert "14.2 GB of 31.0 GB" in page
    assert "812 kB" in page
    assert "for 3 min" in page
    assert "True" not in page
    assert "None" not in page


def test_a_full_disk_is_named_in_the_failing_verdict() -> None:
    facts = _facts(
        ready=False,
        writable=False,
        database_detail="the ledger could not be written: database or disk is full",
        storage_failed_since=datetime(2026, 11, 22, 9, 42, tzinfo=UTC),
        disk=DiskFacts(Path("/var/lib/edge-gateway"), 12_000, 8_000_000_000, 900_000),
    )
    verdict = judge(facts)
    assert verdict.level == "failing"
    assert verdict.headline == (
        "Failing: the ledger cannot write since 10:42: the disk is full (12.0 kB free)"
    )
    assert "Free space on /var/lib/edge-gateway (12.0 kB free of 8.0 GB)" in verdict.advice[0]


def test_the_store_time_zone_is_checked_when_the_settings_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad:
        load_settings(None, data_dir=tmp_path, timezone="Mars/Olympus_Mons")
    assert [key for key, _ in bad.value.problems] == ["timezone"]
    with pytest.raises(ConfigError):
        load_settings(None, data_dir=tmp_path, timezone="../../etc/passwd")
    zoned = load_settings(None, data_dir=tmp_path, environ={"EDGE_TIMEZONE": ZONE})
    assert zoned.timezone == ZONE
    assert load_settings(None, data_dir=tmp_path, environ={}).timezone is None  # the machine's


def test_the_outbox_chart_is_rebuilt_from_write_and_ack_times(tmp_path: Path) -> None:
    """Three events written 55 minutes ago and acked 15 minutes ago, two written 25 minutes
    ago and still waiting: the depth every 10 minutes, from the ledger alone."""
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    conn = open_sync(tmp_path / "ledger.sqlite3")
    apply_migrations(conn)
    origin = Origin("0042", "gw-01")
    early = append_events(
        conn, origin, [("sale.recorded", {"n": n}) for n in range(3)], now - timedelta(minutes=55)
    )
    append_events(conn, origin, [("sale.recorded", {"n": 9})] * 2, now - timedelta(minutes=25))
    acks = [Ack(e.event_id, "accepted") for e in early]
    apply_acks(conn, acks, [], now - timedelta(minutes=15))
    glance = outbox_glance(conn)
    assert (glance.pending, glance.oldest_pending_at) == (2, now - timedelta(minutes=25))
    points = depth_history(conn, now, timedelta(hours=1), timedelta(minutes=10), glance.pending)
    assert [(int((now - p.at).total_seconds() // 60), p.pending) for p in points] == [
        (60, 0),
        (50, 3),
        (40, 3),
        (30, 3),
        (20, 5),
        (10, 2),
        (0, 2),
    ]
    conn.close()
