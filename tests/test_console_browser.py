"""The console in a real browser: headless Chromium from Debian's packages, driven by
selenium through Debian's chromedriver (nothing is downloaded).

An operator logs in, sees the overview, filters the dead letters, opens one, replays it
with the plan shown first, and finds the order with its new event. Hostile letters
(markup, scripts, event handlers, ``javascript:`` URLs, terminal escapes in the body,
the headers and the reason) show as text and run nothing: every script they carry would
set ``window.__pwned`` and the title, and neither happens, on any page, including rows
the live page adds by itself.

Without chromium these tests are left out with one line in the summary; with
``RELAY_REQUIRE_BROWSER=1`` (CI) they fail instead. ``RELAY_CONSOLE_SCREENSHOTS=DIR``
saves the README's screenshots there (``make console-screenshots``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BROWSER_LEFT_OUT, TestBroker, browser_required
from tests.console_support import (
    HOSTILE_BODY,
    HOSTILE_HEADERS,
    HOSTILE_REASON,
    REPLAYER_TOKEN,
    ConsoleThread,
    console_config,
    file_letters,
    invoice_body,
    invoice_providers,
    letter,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,820",
)


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        why = f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if browser_required():
            pytest.fail(f"RELAY_REQUIRE_BROWSER=1 but {why}")
        if not BROWSER_LEFT_OUT:
            BROWSER_LEFT_OUT.append(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="relay-console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _screenshot(driver: Any, name: str) -> None:
    folder = os.environ.get("RELAY_CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def _until(check: Callable[[], bool], timeout_s: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _log_in(driver: Any, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    assert driver.current_url.endswith("/login")
    driver.find_element(By.ID, "token").send_keys(REPLAYER_TOKEN)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    _until(lambda: driver.title.startswith("Overview"), what="the overview")


def _inert(driver: Any) -> None:
    """Nothing a hostile letter carried ran on this page."""
    assert driver.execute_script("return window.__pwned === undefined")
    assert "pwned" not in driver.title


def test_an_operator_filters_opens_replays_and_finds_the_order(
    browser: Any, tansu: TestBroker, topic: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    config = console_config(
        tansu.bootstrap_servers,
        topic,
        tmp_path,
        providers=invoice_providers(statuses={"refunded": "failed"}),
    )
    missing_status = b'{"invoice_reference":"ORD-B2","amount_usdt_exact":"3.1000"}'
    asyncio.run(
        file_letters(
            config,
            [
                letter(invoice_body("ORD-B1", "refunded")),
                letter(missing_status, reason="missing_field"),
                letter(invoice_body("ORD-B3", "refunded"), reason="stale_event"),
            ],
        )
    )
    with ConsoleThread(config) as console:
        console.wait_indexed()
        _log_in(browser, console.url)
        assert browser.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert browser.find_element(By.ID, "dead-lettered-count").text == "3"
        _screenshot(browser, "overview")

        browser.get(f"{console.url}/letters")
        assert browser.find_element(By.ID, "letter-total").text.startswith("3 letters")
        Select(browser.find_element(By.NAME, "reason")).select_by_visible_text("unknown_status")
        browser.find_element(By.CSS_SELECTOR, "#filters button").click()
        _until(lambda: "reason=unknown_status" in browser.current_url, what="the filter")
        assert browser.find_element(By.ID, "letter-total").text.startswith("1 letter match")
        [link] = browser.find_elements(By.CSS_SELECTOR, "a.letter-link")
        link.click()

        _until(lambda: browser.title.startswith("Dead letter"), what="the letter")
        assert (
            browser.find_element(By.CSS_SELECTOR, "pre.body").text
            == invoice_body("ORD-B1", "refunded").decode()
        )
        assert browser.find_element(By.CSS_SELECTOR, "dd.reason").text == "unknown_status"
        _screenshot(browser, "dead-letter")
        browser.find_element(By.CSS_SELECTOR, "button.plan-one").click()

        _until(lambda: browser.title.startswith("Replay plan"), what="the plan")
        assert browser.find_element(By.ID, "plan-replay").text == "1"
        assert browser.find_element(By.ID, "plan-published").text == "0"
        _screenshot(browser, "replay-plan")
        browser.find_element(By.ID, "confirm-replay").click()

        _until(lambda: browser.find_elements(By.ID, "job-done"), what="the replay")
        assert browser.find_element(By.ID, "job-replayed").text == "1"

        def order_story() -> bool:
            browser.get(f"{console.url}/find?order=ORD-B1")
            return len(browser.find_elements(By.CSS_SELECTOR, "#timeline li.event")) == 1

        _until(order_story, what="the replayed event")
        kinds = [
            li.get_attribute("class")
            for li in browser.find_elements(By.CSS_SELECTOR, "#timeline li")
        ]
        assert kinds == ["dead-letter", "event"]
        assert "payment.payin.failed" in browser.find_element(By.ID, "timeline").text
        _screenshot(browser, "find")


def test_hostile_letters_show_as_text_and_run_nothing(
    browser: Any, tansu: TestBroker, topic: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    config = console_config(tansu.bootstrap_servers, topic, tmp_path, providers=invoice_providers())
    hostile = letter(HOSTILE_BODY, reason=HOSTILE_REASON, headers=HOSTILE_HEADERS)
    asyncio.run(file_letters(config, [hostile]))
    with ConsoleThread(config) as console:
        console.wait_indexed()
        _log_in(browser, console.url)
        _inert(browser)

        browser.get(f"{console.url}/letters/invoices/{hostile.id}")
        _inert(browser)
        body = browser.find_element(By.CSS_SELECTOR, "pre.body").text
        assert "<script>window.__pwned=1" in body  # shown, as text
        assert "\\x1b[2J" in body and "\\x07" in body  # the terminal escapes, made visible
        assert browser.find_element(By.CSS_SELECTOR, "dd.reason").text == HOSTILE_REASON
        headers = browser.find_element(By.CSS_SELECTOR, "table.headers").text
        for value in HOSTILE_HEADERS.values():
            assert value in headers
        # No element came from the letter: no image, no script besides none at all.
        assert browser.find_elements(By.CSS_SELECTOR, "main img, main script") == []
        assert all(
            not (a.get_attribute("href") or "").startswith("javascript:")
            for a in browser.find_elements(By.TAG_NAME, "a")
        )

        for page in ("/letters", "/find?id=" + hostile.id, "/live", "/"):
            browser.get(console.url + page)
            _inert(browser)
            assert browser.find_elements(By.CSS_SELECTOR, "main img") == []

        # The live page adds rows by itself (live.js): a hostile letter arriving now, too.
        browser.get(f"{console.url}/live")
        late = letter(HOSTILE_BODY + b" ", reason=HOSTILE_REASON, headers=HOSTILE_HEADERS)
        asyncio.run(file_letters(config, [late]))
        _until(lambda: browser.find_elements(By.CSS_SELECTOR, "#live tr.new"), what="the live row")
        _inert(browser)
        row = browser.find_element(By.CSS_SELECTOR, "#live tr.new")
        assert HOSTILE_REASON in row.text
        assert row.find_elements(By.TAG_NAME, "img") == []
