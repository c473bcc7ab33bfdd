"""The health figures in Chromium, as an operator and as a viewer, at 1280 and 390 px: the latency is labelled with
what it measures ("check get_quote", the probe's beside it) and its window; a trend from too little data shows why
instead of a direction; the prediction says its band and its assumption; the charts name their units and the time
axis; an empty chart says "no data yet" instead of drawing axes; no sideways scroll, no console error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from health.models import HealthSample
from registry.services import server_create, server_status_transition
from tests.browser import DESKTOP, PHONE, ConsoleErrors, open_browser, scrolls_sideways
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def _checks(server, now, *, minutes: float, kind: str = "probe", tool: str = "", latency=lambda s: 3.7):
    count = int(minutes * 6)  # a check every 10 s
    return [
        HealthSample(
            server=server,
            at=now - timedelta(seconds=10 * (count - i)),
            kind=kind,
            ok=True,
            latency_ms=latency(10 * i),
            tool=tool,
        )
        for i in range(count)
    ]


def _fleet() -> None:
    now = timezone.now()
    gamma = server_create(
        name="exchange-gamma",
        transport="http",
        url="http://127.0.0.1:9/mcp",
        metadata={"health": {"synthetic": {"tool": "get_quote"}, "latency_target_ms": 1_000}},
    )
    young = server_create(name="exchange-young", transport="http", url="http://127.0.0.1:9/mcp")
    server_create(name="exchange-empty", transport="http", url="http://127.0.0.1:9/mcp")
    rows = _checks(gamma, now, minutes=20)
    # Its check call rises 20 ms a minute: degrading, and predicted to reach its 1000 ms target.
    rows += _checks(gamma, now, minutes=20, kind="synthetic", tool="get_quote", latency=lambda s: 5 + s / 3 + s % 7)
    rows += _checks(young, now, minutes=2)
    HealthSample.objects.bulk_create(rows)
    server_status_transition(server_id=gamma.pk, status="online", reason="healthy: checks pass", source="health")


def _page(browser: Browser, base_url: str, username: str, viewport: dict[str, int]) -> tuple[Page, ConsoleErrors]:
    context = browser.new_context(viewport=viewport)
    # live_server speaks no WebSocket: the pages' /ws/events/ is answered (and left quiet) in the browser.
    context.route_web_socket("**/ws/events/", lambda socket: None)
    page = context.new_page()
    errors = ConsoleErrors()
    errors.watch(page)
    page.goto(base_url + "/accounts/login/?next=/health/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.endswith("/health/"))
    return page, errors


def test_health_figures_say_what_they_measure_and_empty_charts_say_no_data_yet(live_server, operator_user, viewer_user):
    _fleet()
    with open_browser() as browser:
        for username, viewport in (
            (operator_user.username, DESKTOP),
            (viewer_user.username, PHONE),
            (viewer_user.username, DESKTOP),
            (operator_user.username, PHONE),
        ):
            wide = viewport is DESKTOP
            page, errors = _page(browser, live_server.url, username, viewport)

            # The fleet table: what each latency measures, the window, a trend's reason instead of a direction.
            gamma = page.locator('tr[data-server="exchange-gamma"]')
            expect(gamma.locator("td").nth(6)).to_contain_text("check get_quote")  # p95, shown at both widths
            expect(page.locator('tr[data-server="exchange-young"]')).to_contain_text(
                "too little data: 1 of 10 minutes, 12 checks"
            )
            expect(gamma).to_contain_text("degrading (+")
            expect(page.locator("#figures-window")).to_have_text("30 min")
            expect(page.locator(".figures-footnote")).to_contain_text("of what decides the status")
            if wide:
                expect(gamma).to_contain_text("80 % band")
                expect(gamma).to_contain_text("if the trend of the last 30 min continues")
                expect(page.locator('tr[data-server="exchange-empty"]')).to_contain_text("too little data: 0 of")
            assert not scrolls_sideways(page), (username, viewport, "/health/")

            # One server's page: the summary and the charts label what they show.
            page.goto(live_server.url + "/health/exchange-gamma/")
            summary = page.locator("#server-health-summary")
            expect(summary).to_contain_text("Latency of the check get_quote (decides the status; target 1000 ms)")
            expect(summary).to_contain_text("last 30 min: p50 ")
            expect(summary).to_contain_text("probe p50 3.7 ms")
            expect(summary).to_contain_text("Prediction: reaches 1000 ms around ")
            latency = page.locator("#latency-chart")
            expect(latency.locator(".main-svg").first).to_be_attached()
            for label in ("time of day, local", "latency (ms)", "probe", "check get_quote", "80 % band: crosses"):
                expect(latency).to_contain_text(label)
            expect(latency).to_contain_text("target 1000 ms")
            expect(page.locator("#availability-chart")).to_contain_text("checks passed")
            expect(page.locator("#status-chart")).to_contain_text("online")
            assert not scrolls_sideways(page), (username, viewport, "/health/exchange-gamma/")

            # A server with no data yet: every chart says so, none draws axes.
            page.goto(live_server.url + "/health/exchange-empty/")
            empty = page.locator("#server-health-summary")
            expect(empty).to_contain_text("Latency of the probe (decides the status; target 1000 ms), last 30 min: no ")
            expect(empty).to_contain_text("Trend of the probe, last 30 min: too little data: 0 of 10 minutes")
            for chart in ("latency-chart", "availability-chart", "timeline-chart", "status-chart"):
                expect(page.locator(f"#{chart} .chart-empty")).to_contain_text("No data yet")
                expect(page.locator(f"#{chart} .main-svg")).to_have_count(0)
            assert not scrolls_sideways(page), (username, viewport, "/health/exchange-empty/")
            if not wide:
                # The server page's health section, on a phone: no data yet there too.
                page.goto(live_server.url + "/servers/exchange-empty/")
                expect(page.locator("#latency-chart .chart-empty")).to_contain_text("No data yet")
                assert not scrolls_sideways(page), (username, viewport, "/servers/exchange-empty/")
            assert errors == [], errors
            page.context.close()
