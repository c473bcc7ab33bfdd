"""The overview answers "what is wrong", the catalogue finds "quote", and a prompt runs from the server page: in
Chromium as an operator and as a viewer, at 1280 and 390 px (the nav one compact row), with no console errors.

live_server speaks no WebSocket: /ws/events/ is answered in the browser (routed before the page opens it), so the
test pushes a live fleet.status event itself. The exchange is real (the suite's exchange host), discovered over MCP.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from health.models import Alert, AlertRule, AlertState
from registry.discovery import discover_and_record
from registry.models import Server, ServerStatus
from registry.services import server_create
from tests.browser import DESKTOP, PHONE, ConsoleErrors, open_browser, scrolls_sideways
from tests.conftest import PASSWORD
from tests.exchanges import EXCHANGE_HOST

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

CAUSE = "clock is offline: 3 checks in a row failed; last: connection refused"
SLOW = "slow: the median check is over the 120 ms target"


def _fleet() -> None:
    url = EXCHANGE_HOST.fresh_exchange_url("--profile", "alpha", "--no-outages", "--error-rate", "0")
    alpha = server_create(name="exchange-alpha", transport="http", url=url, server_type="exchange")
    assert discover_and_record(server=alpha)["ok"]
    Server.objects.filter(pk=alpha.pk).update(status=ServerStatus.ONLINE, status_reason="checks pass")
    idle = "http://127.0.0.1:9/mcp"
    for name, status, reason in (
        ("exchange-gamma", ServerStatus.DEGRADED, SLOW),
        ("exchange-delta", ServerStatus.MAINTENANCE, ""),
        ("clock", ServerStatus.OFFLINE, "not answering: connection refused"),
    ):
        server = server_create(name=name, transport="http", url=idle, server_type="exchange")
        Server.objects.filter(pk=server.pk).update(status=status, status_reason=reason)
    down = AlertRule.objects.create(name="server down", kind="down", severity="critical")
    now = timezone.now()
    Alert.objects.create(
        rule=down,
        server=Server.objects.get(name="clock"),
        server_name="clock",
        state=AlertState.FIRING,
        summary="clock is offline: not answering",
        cause=CAUSE,
        started_at=now - timedelta(minutes=6),
        fired_at=now - timedelta(minutes=5),
    )


def _page(browser: Browser, base_url: str, username: str, viewport: dict, sockets: list) -> tuple[Page, ConsoleErrors]:
    context = browser.new_context(viewport=viewport)
    context.route_web_socket("**/ws/events/", lambda socket: sockets.append(socket))
    page = context.new_page()
    errors = ConsoleErrors()
    errors.watch(page)
    page.goto(base_url + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    return page, errors


def _tile(page: Page, status: str) -> int:
    return int(page.locator(f'[data-counter="{status}"]').inner_text())


def _check_overview(page: Page, phone: bool, sockets: list[WebSocketRoute]) -> None:
    alerts = page.locator("#active-alerts")
    expect(alerts.locator("li.active-alert")).to_have_count(1)
    expect(alerts).to_contain_text(CAUSE)  # the cause, not only what holds now
    expect(alerts).to_contain_text("server down")
    expect(page.get_by_role("link", name="all alerts on the health page")).to_have_attribute("href", "/health/")

    attention = page.locator("#attention-list")
    expect(attention.locator("li")).to_have_count(3)  # every server not online, worst first, reason in words
    expect(attention.locator("li").first).to_contain_text("clock")
    expect(attention.locator('li[data-attention="exchange-gamma"]')).to_contain_text(SLOW)
    expect(attention.locator('li[data-attention="exchange-delta"]')).to_contain_text("in a maintenance window")

    # The tiles add up: every server under exactly one status.
    statuses = ["online", "degraded", "offline", "maintenance"]
    expect(page.locator('[data-counter="total"]')).to_have_text("4")
    assert [_tile(page, status) for status in statuses] == [1, 1, 1, 1]
    expect(page.locator("#tiles-sum")).to_have_text("4 servers = 1 offline + 1 degraded + 1 maintenance + 1 online")
    expect(page.locator('[data-tile="pending"]')).to_be_hidden()

    if phone:
        # The top bar is the brand and session on one line, the pages one row below it.
        height = page.locator("header.topbar").bounding_box()["height"]
        assert height < 110, f"the top bar is {height:.0f} px tall at 390 px"
        expect(page.locator(".nav-links a", has_text="Catalogue")).to_be_attached()
    else:
        # Live: gamma recovers; the tiles, the sum and the list follow without a reload.
        for _ in range(100):
            if len(sockets) >= 3:
                break
            page.wait_for_timeout(50)
        event = {
            "stream": "fleet.status",
            "seq": 10_000,
            "kind": "status",
            "server": "exchange-gamma",
            "payload": {"server": "exchange-gamma", "status": "online", "status_reason": "checks pass"},
        }
        for socket in sockets:
            socket.send(json.dumps({"type": "batch", "events": [event]}))
        expect(page.locator('[data-counter="online"]')).to_have_text("2")
        expect(page.locator('[data-counter="degraded"]')).to_have_text("0")
        expect(attention.locator("li")).to_have_count(2)
        expect(page.locator("#tiles-sum")).to_have_text("4 servers = 1 offline + 1 maintenance + 2 online")
        page.reload()

    # A tile is a link to the table filtered on its status.
    page.locator('[data-tile="offline"]').click()
    expect(page).to_have_url(re.compile(r"\?status=offline#servers$"))
    expect(page.locator("tr[data-server]")).to_have_count(1)
    expect(page.locator('tr[data-server="clock"]')).to_be_visible()


def _check_catalogue(page: Page, base_url: str) -> None:
    page.goto(base_url + "/catalogue/")
    expect(page.locator(".nav-links a[aria-current=page]")).to_have_text("Catalogue")
    page.fill("#catalogue-search input[name=q]", "QUOTE")  # searched as typed, any case
    row = page.locator('tr[data-entry="tool:get_quote"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("exchange-alpha")
    expect(page.locator("#catalogue-count")).to_contain_text("matching “QUOTE”")
    row.get_by_role("link", name=re.compile("exchange-alpha")).click()
    expect(page).to_have_url(re.compile(r"/servers/exchange-alpha/#tools$"))


def _check_server_page(page: Page, base_url: str, operator: bool) -> None:
    page.goto(base_url + "/servers/exchange-alpha/")
    expect(page.locator("h3#prompts")).to_contain_text("Prompts")
    if not operator:
        expect(page.locator("form.prompt-form")).to_have_count(0)
        expect(page.locator("button.read-button")).to_have_count(0)
        return
    panel = page.locator('details[data-prompt="explain_spread"]')
    panel.locator("summary").click()
    panel.locator("button[type=submit]").click()  # the required argument is missing: named at its field
    expect(panel.locator('[data-field="symbol"] .field-error')).to_have_text("This field is required.")
    panel.locator('input[data-argument="symbol"]').fill("BTC-USD")
    panel.locator("button[type=submit]").click()
    result = panel.locator(".call-result")
    expect(result.locator(".prompt-role")).to_have_text("user")
    expect(result).to_contain_text("BTC-USD is quoted bid")

    # A resource read shows its JSON pretty-printed.
    page.locator("button.read-button").first.click()
    shown = page.locator("tr.read-row .call-result pre.content-json").first
    expect(shown).to_contain_text('"symbol": "BTC-USD"')
    assert "\n" in shown.inner_text()


def test_the_overview_catalogue_and_prompts_for_operators_and_viewers(live_server, operator_user, viewer_user):
    _fleet()
    with open_browser() as browser:
        for username, viewport in (
            (operator_user.username, DESKTOP),
            (viewer_user.username, PHONE),
            (operator_user.username, PHONE),
            (viewer_user.username, DESKTOP),
        ):
            operator = username == operator_user.username
            phone = viewport is PHONE
            sockets: list[WebSocketRoute] = []
            page, errors = _page(browser, live_server.url, username, viewport, sockets)
            _check_overview(page, phone, sockets)
            assert not scrolls_sideways(page), ("overview", username, viewport)
            _check_catalogue(page, live_server.url)
            assert not scrolls_sideways(page), ("catalogue", username, viewport)
            _check_server_page(page, live_server.url, operator)
            assert not scrolls_sideways(page), ("server page", username, viewport)
            if phone:
                table = page.locator("table.tool-table").bounding_box()
                assert table["x"] >= 0 and table["x"] + table["width"] <= PHONE["width"], table
            assert errors == [], errors
            page.context.close()
