"""Debian's chromium, headless, driven by Selenium through chromium-driver (both installed by
`scripts/setup`): the one browser setup of the page tests."""

from __future__ import annotations

from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 15
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
)


def chromium(window: str = "1280,1500") -> WebDriver:
    """A new headless browser; the caller quits it."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (*FLAGS, f"--window-size={window}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    return driver


def wait(driver: WebDriver, predicate: Any, message: str, timeout: float = WAIT_S) -> Any:
    """Until `predicate(driver)` is truthy (a page re-rendering under us is retried)."""
    return WebDriverWait(
        driver, timeout, ignored_exceptions=[StaleElementReferenceException]
    ).until(predicate, message)
