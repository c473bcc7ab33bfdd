"""A maintenance window, as the dashboard shows it to an operator and a viewer at 1280 and 390 px: an opportunity
analysed before the window cannot be executed while one of its exchanges is in maintenance (the refusal said in
words), and a fused answer asked during the window leaves that server out and says why. Demo exchanges over the real
protocol; health (the one status decider) puts the server in maintenance."""

from __future__ import annotations

from typing import Any

import pytest

from registry.models import ServerStatus
from tests.browser import DESKTOP, PHONE, open_browser, scrolls_sideways
from tests.coordinator.server_states import open_maintenance, wait_status
from tests.coordinator.test_execute_in_a_browser import operator_or_viewer_page, report_path
from tests.coordinator.test_safe_execution import analyse
from tests.exchanges import register_exchange, wait_discovered

pytestmark = pytest.mark.django_db(transaction=True)

TRANSACTIONS = "/api/coordinator/transactions/"


def fused(api, servers: list[str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    body = {"tool": "get_quote", "arguments": {"symbol": "ETH-USD"}, "servers": servers, "strategy": "median"}
    body |= {"fields": ["bid", "ask"], "quorum": 2, "cache_ttl_seconds": 0}
    response = api.post("/api/fusion/query/", body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_a_maintenance_window_is_respected_by_execute_and_by_fusion_as_the_pages_show(
    live_server, live_fleet, operator_api, operator_user, viewer_user, settings
):
    from playwright.sync_api import expect

    settings.COORDINATOR_EXECUTE_MAX_AGE_SECONDS = 300  # only maintenance may refuse this report
    register_exchange("mw-buy")
    register_exchange("mw-sell", profile="beta")
    register_exchange("mw-third", profile="gamma")
    wait_discovered(live_fleet, "mw-buy", "mw-sell", "mw-third", tool="reserve_order")
    wait_status("mw-buy", "mw-sell", "mw-third")
    report = analyse(operator_api, size=0.01, servers=["mw-buy", "mw-sell"])
    assert report["opportunities"], report

    open_maintenance("mw-sell", name="sell-side upgrade")
    wait_status("mw-sell", status=ServerStatus.MAINTENANCE)
    run = fused(operator_api, ["mw-buy", "mw-sell", "mw-third"])
    sell = next(source for source in run["sources"] if source["server"] == "mw-sell")
    assert sell["state"] == "excluded" and "maintenance" in sell["reason"], sell

    with open_browser() as browser:

        def pages(username: str, viewport: dict[str, int]):  # type: ignore[no-untyped-def]
            return operator_or_viewer_page(browser, live_server.url, username, viewport)

        desk, desk_errors = pages(operator_user.username, DESKTOP)
        desk.goto(live_server.url + report_path(report))
        desk.locator("#opportunity-rows button").first.click()
        desk.locator("#execute-confirm").click()
        refusal = desk.locator("#execute-error")
        expect(refusal).to_contain_text("Refused: an exchange is not online.")
        expect(refusal).to_contain_text("mw-sell")
        expect(refusal).to_contain_text("maintenance")
        # Chromium logs the refused request (a 409) as "Failed to load resource": that one, nothing else.
        assert [e for e in desk_errors if "409" not in e] == [] and len(desk_errors) == 1, desk_errors

        for username, viewport in ((operator_user.username, PHONE), (viewer_user.username, DESKTOP)):
            page, errors = pages(username, viewport)
            page.goto(f"{live_server.url}/fusion/?run={run['run_id']}")
            row = page.locator('#source-rows tr[data-server="mw-sell"]')
            expect(row).to_contain_text("excluded")
            expect(row).to_contain_text("maintenance")
            expect(page.locator('#source-rows tr[data-server="mw-buy"]')).to_contain_text("used")
            assert not scrolls_sideways(page), viewport
            assert errors == [], errors
