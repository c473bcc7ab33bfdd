"""The health page's alert list in Chromium, as an operator and as a viewer, at 1280 and 390 px: firing alerts
grouped by rule and server type, a flapping server as one open alert, a silenced alert marked silenced (muted,
"silenced until HH:MM by X", no Acknowledge), an acknowledgement shown with who and when, resolved alerts collapsed
with their cause and how they resolved; operators get "Silence…" and Acknowledge, viewers no buttons."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from health.models import Alert, AlertRule, AlertState, Silence
from registry.models import Server
from registry.services import server_create
from tests.browser import DESKTOP, PHONE, ConsoleErrors, open_browser, scrolls_sideways
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

LIVE_ALERT = {
    "what": "firing",
    "id": 99999,
    "rule": "server down",
    "kind": "down",
    "severity": "critical",
    "server": "exchange-alpha",
    "server_type": "exchange",
    "state": "firing",
    "summary": "exchange-alpha is offline: not answering",
    "cause": "exchange-alpha is offline: not answering",
    "resolution": "",
    "flapping": False,
    "value": None,
    "started_at": None,
    "resolved_at": None,
    "acknowledged_by": "",
    "acknowledged_at": None,
    "silenced": False,
    "silenced_by": None,
}
FLAPPING = "exchange-delta is flapping: 6 up/down changes in 10 min"


def _alert(rule: AlertRule, server: Server, summary: str, **fields) -> Alert:
    now = timezone.now()
    fields.setdefault("state", AlertState.FIRING)
    fields.setdefault("cause", summary)
    return Alert.objects.create(
        rule=rule,
        server=server,
        server_name=server.name,
        summary=summary,
        started_at=fields.pop("started_at", now - timedelta(minutes=8)),
        fired_at=fields.pop("fired_at", now - timedelta(minutes=8)),
        **fields,
    )


def _fleet() -> dict[str, int]:
    servers = {
        name: server_create(name=name, transport="http", url="http://127.0.0.1:9/mcp", server_type="exchange")
        for name in ("exchange-delta", "exchange-gamma", "exchange-beta")
    }
    clock = server_create(name="clock", transport="http", url="http://127.0.0.1:9/mcp", server_type="utility")
    down = AlertRule.objects.create(name="server down", kind="down", severity="critical")
    slow = AlertRule.objects.create(name="slow server", kind="latency", severity="warning")
    now = timezone.now()
    # delta flaps: one open alert (it fired on its first outage, and says what holds now).
    delta = _alert(down, servers["exchange-delta"], FLAPPING, cause="exchange-delta is offline: 3 checks failed")
    gamma = _alert(down, servers["exchange-gamma"], "exchange-gamma is offline: not answering")
    Silence.objects.create(
        rule=down,
        server=servers["exchange-gamma"],
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=2),
        comment="known outage",
        created_by="alice-admin",
    )
    _alert(
        slow,
        servers["exchange-beta"],
        "exchange-beta: latency p95 900 ms over 500 ms",
        acknowledged_by="someone-else",
        acknowledged_at=now - timedelta(minutes=2),
    )
    _alert(down, clock, "clock is offline: not answering")
    _alert(
        down,
        servers["exchange-beta"],
        "exchange-beta is online: healthy",
        state=AlertState.RESOLVED,
        cause="exchange-beta is offline: 3 checks in a row failed; last: exchange outage",
        resolution="recovered: now online (healthy: checks pass)",
        resolved_at=now - timedelta(minutes=1),
    )
    return {"delta": delta.pk, "gamma": gamma.pk, "rule": down.pk}


def _health_page(
    browser: Browser, base_url: str, username: str, viewport: dict[str, int], sockets: list[WebSocketRoute]
) -> tuple[Page, ConsoleErrors]:
    """The health page, logged in as `username`. live_server speaks no WebSocket: /ws/events/ is answered in the
    browser instead (routed before the first page opens it), so the test can push health.alerts events itself."""
    context = browser.new_context(viewport=viewport)
    # Not connected to the server: the test answers for it.
    context.route_web_socket("**/ws/events/", lambda socket: sockets.append(socket))
    page = context.new_page()
    errors = ConsoleErrors()
    errors.watch(page)
    page.goto(base_url + "/accounts/login/?next=/health/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.endswith("/health/"))
    return page, errors


def _push_alert(sockets: list[WebSocketRoute], alert: dict) -> None:
    batch = {
        "type": "batch",
        "events": [
            {"stream": "health.alerts", "seq": 1, "kind": alert["what"], "server": alert["server"], "payload": alert}
        ],
    }
    for socket in sockets:
        socket.send(json.dumps(batch))


def test_the_alert_list_groups_marks_silences_and_acknowledgements_by_role(live_server, operator_user, viewer_user):
    ids = _fleet()
    with open_browser() as browser:
        for username, viewport in (
            (operator_user.username, DESKTOP),
            (viewer_user.username, PHONE),
            (operator_user.username, PHONE),
            (viewer_user.username, DESKTOP),
        ):
            operator = username == operator_user.username
            sockets: list[WebSocketRoute] = []
            page, errors = _health_page(browser, live_server.url, username, viewport, sockets)
            card = page.locator("#alerts-card")
            groups = card.locator("#alert-list > li.alert-group")
            expect(groups).to_have_count(3)  # server down · exchange, server down · utility, slow server · exchange
            expect(groups.first).to_contain_text("server down")
            expect(groups.first).to_contain_text("exchange · 2 alerts, 1 silenced")
            expect(page.locator("#alert-count")).to_have_text("3 firing, 1 silenced")

            delta = card.locator(f'li[data-alert="{ids["delta"]}"]')
            expect(delta).to_have_count(1)  # one open alert for the flapping server
            expect(delta.locator(".alert-state")).to_have_text("FLAPPING")
            expect(delta).to_contain_text(FLAPPING)
            expect(delta).to_contain_text("Fired on: exchange-delta is offline: 3 checks failed")
            expect(delta).to_be_in_viewport()  # the alerts are at the top, the server is named

            gamma = card.locator(f'li[data-alert="{ids["gamma"]}"]')
            expect(gamma).to_have_class("alert-item alert-firing severity-critical alert-silenced")
            expect(gamma.locator(".alert-state")).to_have_text("SILENCED")
            expect(gamma.locator(".alert-silence")).to_contain_text("Silenced until ")
            expect(gamma.locator(".alert-silence")).to_contain_text("by alice-admin: known outage")
            expect(gamma.locator("button")).to_have_count(0)
            expect(card.locator("li.alert-item", has_text="exchange-beta: latency p95")).to_contain_text(
                "Acknowledged by someone-else at "
            )

            resolved = page.locator("#alert-resolved")
            expect(resolved).not_to_have_attribute("open", "")  # collapsed: the history does not push things down
            expect(page.locator("#alert-resolved-count")).to_have_text("1")
            resolved.locator("summary").click()
            expect(resolved).to_contain_text("Cause: exchange-beta is offline: 3 checks in a row failed")
            expect(resolved).to_contain_text("Resolved: recovered: now online (healthy: checks pass)")

            if operator:
                link = delta.get_by_role("link", name="Silence…")
                expect(link).to_have_attribute("href", f"/alerting/?rule={ids['rule']}&server=exchange-delta#silence")
                expect(gamma.get_by_role("link", name="Silence…")).to_have_count(0)  # already silenced
                if viewport is DESKTOP:  # the first visit acknowledges; the later ones see who did
                    delta.get_by_role("button", name="Acknowledge").click()
                expect(delta.locator(".alert-ack")).to_contain_text(f"Acknowledged by {operator_user.username} at ")
                expect(delta.get_by_role("button", name="Acknowledge")).to_have_count(0)
            else:
                expect(card.locator("button")).to_have_count(0)
                expect(card.get_by_role("link", name="Silence…")).to_have_count(0)
                expect(delta.locator(".alert-ack")).to_contain_text(f"Acknowledged by {operator_user.username} at ")
            if operator and viewport is DESKTOP:
                # Live: a new alert pushed on health.alerts joins its group without a reload.
                for _ in range(100):  # the page's socket reaches the route (handled while Playwright runs)
                    if sockets:
                        break
                    page.wait_for_timeout(50)
                assert sockets, "the page opened no /ws/events/ socket"
                _push_alert(sockets, {**LIVE_ALERT, "rule_id": ids["rule"], "fired_at": timezone.now().isoformat()})
                expect(card.locator('li[data-alert="99999"]')).to_contain_text("exchange-alpha is offline")
                expect(groups.first).to_contain_text("exchange · 3 alerts, 1 silenced")
            assert not scrolls_sideways(page), (username, viewport)
            assert errors == [], errors
            page.context.close()
