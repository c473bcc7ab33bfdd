"""The demo as an operator meets it, in headless Chromium: log in, see the fleet, watch a status change live.

Runs `manage.py serve --demo` for real (uvicorn, WebSockets, the fleet loops, the exchange processes).
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from mcp_client.processes import child_pids
from tests.demo_process import RunningDemo, cmdline, running_demo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    """One demo for the module: starting one costs more than either test (the phone test needs only the five rows and
    a live ticker, whichever test runs first)."""
    with running_demo(tmp_path_factory.mktemp("dashboard-demo")) as running:
        yield running


def test_an_operator_logs_in_sees_the_fleet_and_a_status_change_arrives_live(demo):
    assert Path(CHROMIUM).exists(), "Chromium is installed by `make test` (apt package chromium)"
    base, username, password = demo.base_url, demo.username, demo.password
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(base + "/")
            expect(page).to_have_url(re.compile(r"/accounts/login/"))
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", "wrong password")
            page.click("button[type=submit]")
            expect(page.locator("body")).to_contain_text("correct username and password")

            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            rows = page.locator("tr[data-server]")
            expect(rows).to_have_count(5)
            # The sessions come up in the background; the badges turn Online without a reload.
            for name in ("exchange-alpha", "exchange-epsilon"):
                badge = page.locator(f'tr[data-server="{name}"] [data-field="status"]')
                expect(badge).to_have_text(re.compile("Online"), timeout=30_000)
            expect(page.locator("#live-indicator")).to_contain_text("live")

            # The live market: quotes from the exchanges' ticker resources and the spreads derived from them, pushed
            # through the pipeline; the best bid and ask name the exchange they come from.
            ticker = page.locator('#market-ticker tr[data-symbol="BTC-USD"]')
            expect(ticker.locator('[data-field="spread"]')).to_contain_text("bps", timeout=30_000)
            expect(ticker.locator('[data-field="best-bid"]')).to_contain_text(re.compile(r"\d+\.\d+ [a-z]+"))
            expect(ticker.locator('[data-field="quotes"]')).to_contain_text("alpha")

            # Kill the HTTP exchange (the demo's own child): the probe notices, the badge turns Offline live.
            http_exchange = [pid for pid in child_pids(demo.process.pid) if b"streamable-http" in cmdline(pid)]
            assert len(http_exchange) == 1
            os.kill(http_exchange[0], signal.SIGKILL)
            badge = page.locator('tr[data-server="exchange-epsilon"] [data-field="status"]')
            expect(badge).to_have_text(re.compile("Offline"), timeout=30_000)

            # The pipeline page: live events arrive in the table; a filter narrows them, pause stops them.
            page.click("nav >> text=Pipeline")
            rows = page.locator("#event-rows tr")
            expect(rows.first).to_be_visible(timeout=30_000)
            page.fill("#event-filters input[name=streams]", "fleet.status")
            page.click("#event-filters button[type=submit]")
            expect(page.locator("#socket-state")).to_have_text("live", timeout=10_000)
            page.fill("#event-filters input[name=streams]", "quotes.*")
            page.fill("#event-filters input[name=servers]", "exchange-alpha")
            page.click("#event-filters button[type=submit]")
            alpha_quote = page.locator("#event-rows tr", has_text="exchange-alpha").filter(has_text="quotes.")
            expect(alpha_quote.first).to_be_visible(timeout=30_000)
            page.fill("#event-filters input[name=streams]", "quotes. bad")
            page.click("#event-filters button[type=submit]")
            expect(page.locator("#filter-error")).to_contain_text("'streams'")
            expect(page.locator('[data-metric="events_in"]')).not_to_have_text("–", timeout=10_000)

            page.goto(base + "/servers/exchange-alpha/")
            expect(page.locator("body")).to_contain_text("get_quote")
            expect(page.locator("body")).to_contain_text("reserve_order")
            # The health section on the server page: its status line and its Plotly latency chart, from the checks.
            expect(page.locator("#server-health-summary")).to_contain_text("availability 24 h", timeout=30_000)
            expect(page.locator("#latency-chart .main-svg").first).to_be_attached(timeout=30_000)

            # Call a tool from its form: bad input is named at its field, a good call shows the quote in place.
            panel = page.locator('details.call-panel[data-tool="get_order_book"]')
            panel.locator("summary").click()
            panel.locator('[data-field="symbol"] input').fill("BTC-USD")
            panel.locator('[data-field="depth"] input').fill("0")
            panel.locator("button[type=submit]").click()
            expect(panel.locator('[data-field="depth"] .field-error')).to_contain_text("minimum of 1")
            panel.locator('[data-field="depth"] input').fill("3")
            panel.locator("button[type=submit]").click()
            expect(panel.locator(".call-result pre")).to_contain_text('"bids"')
            expect(panel.locator(".call-outcome")).to_contain_text("ms")

            # Fusion: ask every exchange for BTC-USD at once; beta's 0.5 % bias is left out as an outlier, and the
            # run joins the recent runs.
            page.click("nav >> text=Fusion")
            page.click("#fusion-form button[type=submit]")
            beta = page.locator('#source-rows tr[data-server="exchange-beta"]')
            expect(beta).to_contain_text("excluded", timeout=15_000)
            expect(beta).to_contain_text("outlier")
            expect(page.locator("#result-summary")).to_contain_text("confidence")
            expect(page.locator("#fusion-chart .main-svg").first).to_be_attached()
            expect(page.locator("#run-rows tr").first).to_be_visible(timeout=15_000)

            # Operations: run an arbitrage analysis from the form, land on its report with the spread table.
            page.click("nav >> text=Operations")
            page.click("#arbitrage-form button[type=submit]")
            page.wait_for_url(re.compile(r"/coordinator/operations/\d+/"), timeout=30_000)
            expect(page.locator("#operation-state")).to_have_text("succeeded")
            expect(page.locator("#pair-rows tr").first).to_contain_text("exchange-")
            expect(page.locator("#quote-chart .main-svg").first).to_be_attached()
        finally:
            browser.close()


def test_every_page_fits_a_phone_and_shows_each_status(demo):
    """At 390 px wide, no page scrolls sideways, and every server's status badge lies within the screen."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(demo.base_url + "/accounts/login/")
            page.fill("input[name=username]", demo.username)
            page.fill("input[name=password]", demo.password)
            page.click("button[type=submit]")
            expect(page.locator("tr[data-server]")).to_have_count(5)
            expect(page.locator('#market-ticker tr[data-symbol="BTC-USD"] [data-field="spread"]')).to_contain_text(
                "bps", timeout=30_000
            )
            for path in (
                "/",
                "/servers/exchange-alpha/",
                "/pipeline/",
                "/health/",
                "/health/exchange-alpha/",
                "/fusion/",
                "/coordinator/",
            ):
                page.goto(demo.base_url + path)
                page.wait_for_load_state("networkidle")
                assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
            page.goto(demo.base_url + "/")
            badges = page.locator('tr[data-server] [data-field="status"]')
            expect(badges).to_have_count(5)
            for index in range(5):
                box = badges.nth(index).bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        finally:
            browser.close()
