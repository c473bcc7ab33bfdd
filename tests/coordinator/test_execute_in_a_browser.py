"""The arbitrage report and Execute in Chromium, as an operator and as a viewer, at 1280 and 390 px: the report is
compact with columns that add up; Execute asks first (both orders, the expected net), Cancel sends nothing, Confirm
runs the transaction, whose page shows each fill, the realised profit and the way back to its analysis; a second
execution and a stale report are refused in words. Demo exchanges over the real protocol, one browser."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection

from coordinator.models import Transaction
from tests.browser import DESKTOP, PHONE, ConsoleErrors, open_browser, scrolls_sideways
from tests.conftest import PASSWORD
from tests.coordinator.server_states import wait_status
from tests.coordinator.test_safe_execution import age_quotes, analyse
from tests.exchanges import register_exchange, wait_discovered

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/coordinator/transactions/"


def operator_or_viewer_page(browser, base_url: str, username: str, viewport: dict[str, int]):  # type: ignore[no-untyped-def]
    """A logged-in page whose /ws/events/ socket is answered by the test from the start (live_server speaks no
    WebSocket, and the pages' live stream is not what this test is about)."""
    context = browser.new_context(viewport=viewport)
    context.route_web_socket("**/ws/events/", lambda socket: None)
    page = context.new_page()
    errors = ConsoleErrors()
    errors.watch(page)
    page.goto(base_url + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    return page, errors


def report_path(analysis: dict[str, Any]) -> str:
    return f"/coordinator/operations/{analysis['operation_id']}/"


def test_execute_asks_first_then_runs_and_refuses_in_words(
    live_server, live_fleet, operator_api, operator_user, viewer_user, settings
):
    from playwright.sync_api import expect

    # Generous here, so a slow machine between the analysis and the click cannot make the fresh report stale; the
    # stale one is an hour old.
    settings.COORDINATOR_EXECUTE_MAX_AGE_SECONDS = 300
    register_exchange("page-buy")
    register_exchange("page-sell", profile="beta")  # quotes 0.5 % high: buy on page-buy, sell here
    wait_discovered(live_fleet, "page-buy", "page-sell", tool="reserve_order")
    wait_status("page-buy", "page-sell")
    # Three symbols on two exchanges: six pairs, more than the report shows before "show all".
    fresh = analyse(operator_api, symbols=["ETH-USD", "BTC-USD", "SOL-USD"], size=0.01)
    stale = analyse(operator_api, size=0.01)
    age_quotes(stale["operation_id"], 3600)
    best = fresh["opportunities"][0]
    assert (best["buy_on"], best["sell_on"]) == ("page-buy", "page-sell") and len(fresh["pairs"]) == 6
    keys: list[str] = []

    def remember_key(request) -> None:  # type: ignore[no-untyped-def]
        if request.method == "POST" and request.url.endswith(URL):
            keys.append(json.loads(request.post_data)["idempotency_key"])

    with open_browser() as browser:
        # A viewer reads the report at both widths: no Execute, no dialog, nothing scrolls sideways.
        for viewport in (DESKTOP, PHONE):
            page, errors = operator_or_viewer_page(browser, live_server.url, viewer_user.username, viewport)
            page.goto(live_server.url + report_path(fresh))
            expect(page.locator("#opportunity-rows tr")).to_have_count(len(fresh["opportunities"]))
            assert page.locator("#opportunity-rows button").count() == 0
            assert page.locator("#execute-dialog").count() == 0
            assert not scrolls_sideways(page), viewport
            assert errors == [], errors
            page.context.close()

        desk, desk_errors = operator_or_viewer_page(browser, live_server.url, operator_user.username, DESKTOP)
        phone, phone_errors = operator_or_viewer_page(browser, live_server.url, operator_user.username, PHONE)
        for page in (desk, phone):
            page.on("request", remember_key)
            page.goto(live_server.url + report_path(fresh))
            expect(page.locator("#opportunity-rows button").first).to_be_visible()
        assert not scrolls_sideways(phone)

        # Compact: five of the six pairs until asked; the columns add up as shown.
        expect(desk.locator("#pair-rows tr")).to_have_count(5)
        desk.click("#pairs-all")
        expect(desk.locator("#pair-rows tr")).to_have_count(6)
        expect(desk.locator("#pairs-all")).to_have_text("Show the top 5 only")
        for row in desk.locator("#pair-rows tr").all():
            gross, fees, slippage, net = (float(row.locator("td").nth(i).inner_text()) for i in (1, 2, 3, 4))
            assert round(gross - fees - slippage, 2) == net, (gross, fees, slippage, net)

        # Execute asks first: both orders with side, size, symbol, server and price, and the expected net.
        desk.locator("#opportunity-rows button").first.click()
        dialog = desk.locator("#execute-dialog")
        expect(dialog).to_be_visible()
        buy, sell = dialog.locator("li[data-side=buy]"), dialog.locator("li[data-side=sell]")
        expect(buy).to_have_text(f"Buy {best['size']:g} {best['symbol']} on page-buy at ≈ {best['buy_price']:.2f}")
        expect(sell).to_have_text(f"Sell {best['size']:g} {best['symbol']} on page-sell at ≈ {best['sell_price']:.2f}")
        expect(dialog.locator("#execute-net")).to_contain_text(f"{best['net_bps']:.1f} bps")
        expect(dialog.locator("#execute-age")).to_contain_text("300 s old")
        # Cancel does nothing: the dialog closes, no request is sent, nothing is shown.
        dialog.locator("#execute-cancel").click()
        expect(dialog).to_be_hidden()
        assert keys == [] and desk.locator("#execute-error").is_hidden()

        # Confirm runs it, and the transaction's page says what it did and where it came from.
        desk.locator("#opportunity-rows button").first.click()
        dialog.locator("#execute-confirm").click()
        desk.wait_for_url(lambda url: "/coordinator/operations/" in url and not url.endswith(report_path(fresh)))
        expect(desk.locator("#tx-decision")).to_contain_text("committed")
        expect(desk.locator("#tx-analysis-link")).to_have_attribute("href", report_path(fresh))
        expect(desk.locator(".fill-price")).to_have_count(2)
        for cell in desk.locator(".fill-price").all():
            assert float(cell.inner_text()) > 0
        expect(desk.locator("#tx-realised")).to_contain_text("USD")
        expect(desk.locator("#tx-expected")).to_contain_text(f"{best['net_profit']:.2f}")
        executed = desk.url

        # The phone's page was opened before: its Execute is answered "already executed", with the way there.
        phone.locator("#opportunity-rows button").first.click()
        phone_dialog = phone.locator("#execute-dialog")
        expect(phone_dialog).to_be_visible()
        assert not scrolls_sideways(phone)
        phone_dialog.locator("#execute-confirm").click()
        refusal = phone.locator("#execute-error")
        expect(refusal).to_contain_text("Refused: already executed.")
        link = refusal.locator("a")
        expect(link).to_have_text(re.compile(r"Open transaction #\d+"))
        assert executed.endswith(link.get_attribute("href"))
        # Opened again, the report links the execution instead of offering it.
        phone.goto(live_server.url + report_path(fresh))
        expect(phone.locator("#opportunity-rows tr").first.locator("a")).to_contain_text("committed")
        assert not scrolls_sideways(phone)

        # A stale report is refused in words, with the way to a new analysis.
        desk.goto(live_server.url + report_path(stale))
        desk.locator("#opportunity-rows button").first.click()
        desk.locator("#execute-confirm").click()
        stale_refusal = desk.locator("#execute-error")
        expect(stale_refusal).to_contain_text("Refused: the quotes are too old.")
        expect(stale_refusal).to_contain_text("over the 300 s limit")
        expect(stale_refusal.locator("a")).to_have_text("Run a new analysis")
        # Chromium logs each refusal the test asked for (a 409 from the transactions API) as "Failed to load
        # resource": one on each page, and nothing else.
        for errors in (desk_errors, phone_errors):
            refusals = [e for e in errors if "status of 409 (Conflict)" in e and e.endswith(URL + ")")]
            assert len(refusals) == 1 and len(errors) == 1, errors

    assert len(keys) == 3 and len(set(keys)) == 3, keys
    assert all(re.fullmatch(r"op-[0-9a-f]{32}", key) for key in keys), keys

    # Playwright's sync API leaves an event loop in this thread, where Django refuses ORM calls: another thread.
    def count() -> int:
        try:
            return Transaction.objects.count()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as elsewhere:
        assert elsewhere.submit(count).result() == 1
