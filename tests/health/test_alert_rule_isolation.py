"""One bad alert rule cannot stop alerting: each rule is evaluated on its own, a rule that cannot be evaluated is
reported on the rule (the API, the admin, the health page, one `health.alerts` event) while the others go on firing,
and it clears once the rule evaluates again. An empty scope is valid and matches nothing."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from health.alerting import evaluate
from health.models import Alert, AlertRule
from health.selectors import fleet_health, trend_inputs
from registry.models import Server
from registry.services import server_create
from tests.health.test_alerts import down_rule, exchange
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

EMPTY_SCOPE = {"name": "pb-none", "kind": "predicted_breach", "tag": "no-such-tag"}


def offline_server(name: str) -> Server:
    """A registered server the rounds see as offline (its status is what a "down" rule reads)."""
    server = server_create(name=name, transport="http", url="http://127.0.0.1:9/mcp")
    Server.objects.filter(pk=server.pk).update(status="offline", status_reason="not answering")
    return server


def broken_rule(name: str = "broken") -> AlertRule:
    # A kind the evaluator cannot handle: only a row written around the API and the admin can have one.
    return AlertRule.objects.create(name=name, kind="sideways", group_wait_seconds=0.2)


def health_alert_events(client: APIClient) -> list[dict]:
    answer = client.get("/api/events/?stream=health.alerts&limit=1000")
    assert answer.status_code == 200
    return answer.json()["results"]


def test_the_trend_series_and_fleet_figures_of_no_servers_are_empty():
    now = timezone.now()
    assert trend_inputs([], now) == {}
    assert fleet_health([], now) == []


def test_an_empty_scope_predicted_breach_rule_matches_nothing_and_a_down_rule_still_fires():
    offline_server("gone")
    AlertRule.objects.create(**EMPTY_SCOPE)
    down_rule(group_wait_seconds=0)
    changes = evaluate()
    assert [(c["what"], c["rule"], c["server"]) for c in changes] == [("firing", "server down", "gone")]
    empty = AlertRule.objects.get(name="pb-none")
    assert empty.last_error == "" and empty.last_error_at is None and empty.last_evaluated_at is not None
    assert not Alert.objects.filter(rule=empty).exists()


def test_a_failing_rule_keeps_its_alerts_reports_its_error_once_and_clears_it(caplog):
    offline_server("gone")
    rule = down_rule(name="first down", group_wait_seconds=0)
    down_rule(name="second down", group_wait_seconds=0)
    assert {c["rule"] for c in evaluate()} == {"first down", "second down"}
    AlertRule.objects.filter(pk=rule.pk).update(kind="sideways")
    offline_server("also-gone")

    with caplog.at_level(logging.DEBUG, logger="health.alerting"):
        rounds = [evaluate(timezone.now() + timedelta(seconds=i)) for i in range(3)]
    first, *later = rounds
    assert [(c["what"], c["rule"], c["server"]) for c in first] == [
        ("rule_error", "first down", None),
        ("firing", "second down", "also-gone"),
    ]
    assert first[0]["error"] == "ValueError: unknown rule kind 'sideways'"
    assert later == [[], []]  # the same failure is not told again
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "first down" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].exc_info is not None  # logged once, with its traceback
    rule.refresh_from_db()
    assert rule.last_error == "ValueError: unknown rule kind 'sideways'"
    assert rule.last_error_at is not None and rule.last_evaluated_at > rule.last_error_at
    # Not evaluated is not "no longer holds": the failing rule's alert stays firing, none is opened for it.
    assert Alert.objects.get(rule=rule).state == "firing"

    AlertRule.objects.filter(pk=rule.pk).update(kind="down")
    recovered = evaluate(timezone.now() + timedelta(seconds=10))
    assert [(c["what"], c["rule"], c["server"]) for c in recovered] == [
        ("firing", "first down", "also-gone"),
        ("rule_ok", "first down", None),
    ]
    rule.refresh_from_db()
    assert rule.last_error == "" and rule.last_error_at is None
    assert evaluate(timezone.now() + timedelta(seconds=11)) == []


def test_the_rule_error_shows_in_the_api_the_admin_and_the_health_page(viewer_user, admin_user):
    offline_server("gone")
    AlertRule.objects.create(**EMPTY_SCOPE)
    broken_rule()
    down_rule(group_wait_seconds=0)
    evaluate()
    client = APIClient()
    client.force_authenticate(viewer_user)
    rules = {r["name"]: r for r in client.get("/api/alerts/rules/").json()["results"]}
    assert rules["broken"]["last_error"] == "ValueError: unknown rule kind 'sideways'"
    assert rules["broken"]["last_error_at"] and rules["broken"]["last_evaluated_at"]
    assert rules["pb-none"]["last_error"] == "" and rules["pb-none"]["last_evaluated_at"]
    assert rules["server down"]["last_error"] == ""
    failing = client.get("/api/alerts/rules/?failing=true").json()["results"]
    assert [r["name"] for r in failing] == ["broken"]
    assert {r["name"] for r in client.get("/api/alerts/rules/?failing=false").json()["results"]} == {
        "pb-none",
        "server down",
    }
    bad = client.get("/api/alerts/rules/?failing=maybe")
    assert bad.status_code == 400 and "failing" in bad.json()
    client.force_login(viewer_user)
    page = client.get("/health/")
    assert page.status_code == 200 and b'id="rule-error-list"' in page.content

    # Written by the rounds only: an admin cannot set or clear the error through the API.
    client.force_authenticate(admin_user)
    edited = client.patch(
        f"/api/alerts/rules/{rules['broken']['id']}/", {"last_error": "", "severity": "critical"}, format="json"
    )
    assert edited.status_code == 200 and edited.json()["last_error"].startswith("ValueError")
    made = client.post("/api/alerts/rules/", {"name": "new", "kind": "down", "last_error": "x"}, format="json")
    assert made.status_code == 201 and made.json()["last_error"] == ""

    client.force_login(admin_user)
    listing = client.get("/admin/health/alertrule/")
    assert listing.status_code == 200
    assert b"failing since" in listing.content and b"unknown rule kind" in listing.content


def test_over_the_protocol_a_broken_rule_is_reported_while_a_down_rule_fires(live_fleet, viewer_user, caplog):
    AlertRule.objects.create(**EMPTY_SCOPE)
    broken = broken_rule()
    down_rule()
    exchange("flaky", "--outage", "1:120")
    live_fleet.request_reconcile()
    monitor = live_fleet.monitor
    wait_for(
        lambda: Alert.objects.filter(rule__name="server down", server__name="flaky", state="firing").exists(),
        timeout=40,
        what="the down rule firing for the server that went down",
    )
    seen: set = set()

    def rounds_after_firing() -> bool:
        seen.add(AlertRule.objects.get(pk=broken.pk).last_evaluated_at)
        return len(seen) >= 4

    wait_for(rounds_after_firing, what="three more alert rounds")
    assert monitor.loop_errors == 0
    client = APIClient()
    client.force_authenticate(viewer_user)
    (failing,) = client.get("/api/alerts/rules/?failing=true").json()["results"]
    assert failing["name"] == "broken" and "unknown rule kind" in failing["last_error"]
    wait_for(lambda: any(e["kind"] == "firing" for e in health_alert_events(client)), what="the firing event")
    errors = [e for e in health_alert_events(client) if e["kind"] == "rule_error"]
    assert len(errors) == 1  # once, not once per round
    assert errors[0]["payload"]["rule"] == "broken" and errors[0]["payload"]["error"] == failing["last_error"]
    told = [r for r in caplog.records if r.levelno >= logging.WARNING and "'broken'" in r.getMessage()]
    assert len(told) == 1

    AlertRule.objects.filter(pk=broken.pk).update(kind="down")
    wait_for(lambda: AlertRule.objects.get(pk=broken.pk).last_error == "", what="the error cleared")
    wait_for(lambda: any(e["kind"] == "rule_ok" for e in health_alert_events(client)), what="the rule_ok event")
    wait_for(
        lambda: Alert.objects.filter(rule=broken, server__name="flaky", state="firing").exists(),
        what="the repaired rule firing too",
    )
    assert client.get("/api/alerts/rules/?failing=true").json()["results"] == []


def test_the_health_page_shows_a_failing_rule_and_drops_it_once_it_clears(live_server, viewer_user):
    from playwright.sync_api import expect, sync_playwright

    from tests.conftest import PASSWORD
    from tests.e2e.test_dashboard_in_a_browser import CHROMIUM, CHROMIUM_ARGS

    offline_server("gone")
    AlertRule.objects.create(**EMPTY_SCOPE)
    rule = broken_rule()
    down_rule(group_wait_seconds=0)
    evaluate()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(live_server.url + "/accounts/login/?next=/health/")
            page.fill("input[name=username]", viewer_user.username)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            shown = page.locator('#rule-error-list li[data-rule="broken"]')
            expect(shown).to_contain_text("unknown rule kind 'sideways'")
            expect(page.locator("#rule-error-list li")).to_have_count(1)  # pb-none's empty scope is no error
            expect(page.locator("#alert-list")).to_contain_text("server down")  # and the other rule fired

            # Playwright's sync API runs an event loop in this thread, where Django refuses ORM calls: another thread.
            with ThreadPoolExecutor(1) as elsewhere:
                elsewhere.submit(lambda: AlertRule.objects.filter(pk=rule.pk).update(kind="down")).result()
                elsewhere.submit(evaluate).result()
            page.reload()
            expect(page.locator("#rule-errors")).to_be_hidden()
        finally:
            browser.close()
