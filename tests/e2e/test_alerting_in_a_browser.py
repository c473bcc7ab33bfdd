"""The alerting page in Chromium: an operator silences an alert from the health page's prefilled link and ends the
silence, plans a maintenance window and ends it, adds a rule scoped to a server picked from the list (a bad
threshold is named at its field first); an admin adds a webhook channel and sends a test to a receiver on 127.0.0.1;
a viewer reads the same lists with no form and no button; at 390 px nothing scrolls sideways; no console errors."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from health.models import AlertRule, MaintenanceWindow, NotificationChannel, NotificationDelivery, Silence
from registry.services import server_create
from tests.browser import DESKTOP, PHONE, ConsoleErrors, open_browser, scrolls_sideways
from tests.conftest import PASSWORD
from tests.health.test_alerts import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

SECRET = "browser-test-signing-secret"


def logged_in_page(
    browser: Browser, base_url: str, username: str, *, viewport: dict[str, int]
) -> tuple[Page, ConsoleErrors]:
    """A new page logged in as `username`, straight onto /alerting/ (the overview after a plain login opens
    /ws/events/, which live_server does not speak; the alerting page opens no socket)."""
    page = browser.new_context(viewport=viewport).new_page()
    errors = ConsoleErrors()
    errors.watch(page)
    page.goto(base_url + "/accounts/login/?next=/alerting/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/alerting/" in url and "/accounts/login/" not in url)
    return page, errors


def _operator_manages_silences_windows_and_rules(page: Page, base_url: str, rule_id: int) -> None:
    # The health page's "Silence…" link on an alert of "server down" on alpha.
    page.goto(f"{base_url}/alerting/?rule={rule_id}&server=exchange-alpha#silence")
    form = page.locator("#silence-form")
    expect(form.locator("select[name=rule]")).to_have_value("server down")
    expect(form.locator("select[name=server]")).to_have_value("exchange-alpha")
    expect(page.locator("#silence-prefill")).to_have_text("For the alert you chose: server down on exchange-alpha.")
    form.get_by_label("4 hours").check()
    form.get_by_label("Comment").fill("upgrading alpha")
    form.get_by_role("button", name="Silence").click()
    silence = page.locator("#silence-list li.alerting-item", has_text="server down on exchange-alpha")
    expect(silence.locator(".alerting-state")).to_have_text("active")
    expect(silence).to_contain_text("upgrading alpha")
    expect(silence).to_contain_text("by oscar-operator")
    silence.get_by_role("button", name="End now").click()
    expect(silence.locator(".alerting-state")).to_have_text("ended")
    expect(silence.get_by_role("button")).to_have_count(0)

    windows = page.locator("#window-form")
    windows.get_by_label("Name").fill("upgrade beta")
    windows.get_by_role("button", name="Plan window").click()  # no scope yet: named at the servers field
    expect(windows.locator('[data-error-for="servers"]')).to_have_text("name servers, a server type or a tag")
    windows.get_by_label("Servers").select_option(["exchange-beta"])
    windows.get_by_role("button", name="Plan window").click()
    window = page.locator("#window-list li.alerting-item", has_text="upgrade beta")
    expect(window.locator(".alerting-state")).to_have_text("open")
    expect(window).to_contain_text("exchange-beta")
    expect(windows.locator('[data-error-for="servers"]')).to_be_hidden()
    window.get_by_role("button", name="End now").click()
    expect(window.locator(".alerting-state")).to_have_text("ended")

    rules = page.locator("#rule-form")
    rules.get_by_label("Name").fill("alpha availability")
    rules.get_by_label("Kind").select_option("availability")
    expect(rules.locator("#rule-threshold-label")).to_have_text("Threshold (fraction, 0–1)")
    rules.locator("input[name=threshold]").fill("99")  # a percentage where a fraction belongs
    rules.get_by_label("Servers").select_option(["exchange-alpha"])
    rules.get_by_role("button", name="Add rule").click()
    expect(rules.locator('[data-error-for="threshold"]')).to_contain_text("a fraction from 0 to 1")
    rules.locator("input[name=threshold]").fill("0.995")
    rules.get_by_role("button", name="Add rule").click()
    rule = page.locator("#rule-list li.alerting-item", has_text="alpha availability")
    expect(rule).to_contain_text("Scope: exchange-alpha")
    expect(rule).to_contain_text("under 99.5 % over 300 s")
    # The new rule is offered for silences at once.
    expect(page.locator("#silence-form select[name=rule] option", has_text="alpha availability")).to_have_count(1)
    rules.get_by_label("Kind").select_option("latency")
    expect(rules.locator("#rule-threshold-label")).to_have_text("Threshold (ms)")


def _admin_adds_a_channel_and_sends_a_test(page: Page, base_url: str, receiver: Receiver) -> None:
    page.goto(f"{base_url}/alerting/#channels")
    form = page.locator("#channel-form")
    form.get_by_label("Name").fill("ops hook")
    form.get_by_label("URL").fill(receiver.url)
    form.get_by_role("button", name="Add channel").click()  # no secret: a webhook needs one, named there
    expect(form.locator('[data-error-for="secret"]')).to_contain_text("needs a secret")
    form.get_by_label("Secret", exact=True).fill(SECRET)
    form.get_by_role("button", name="Add channel").click()
    channel = page.locator("#channel-list li.alerting-item", has_text="ops hook")
    expect(channel).to_contain_text("Secret: set, hidden")
    channel.get_by_role("button", name="Send a test").click()
    expect(channel.locator(".alerting-outcome")).to_have_text("Test: Delivered: HTTP 200")
    expect(page.locator("#delivery-list li", has_text="ops hook: test")).to_contain_text("Delivered: HTTP 200")
    channel.get_by_role("button", name="Edit").click()
    expect(form.get_by_label("Secret", exact=True)).to_have_value("")  # write-only: never filled back
    expect(form.locator("#channel-secret-state")).to_have_text("Set, hidden. Type a new one to replace it.")
    assert SECRET not in page.content()


def test_operators_admins_and_viewers_on_the_alerting_page(live_server, operator_user, viewer_user, admin_user):
    for name in ("exchange-alpha", "exchange-beta"):
        server_create(name=name, transport="http", url="http://127.0.0.1:9/mcp", server_type="exchange")
    rule = AlertRule.objects.create(name="server down", kind="down", severity="critical")
    health = Client()
    health.force_login(operator_user)
    assert 'href="/alerting/"' in health.get("/health/").content.decode()  # linked from the alert card's heading
    receiver = Receiver()
    try:
        with open_browser() as browser:
            page, errors = logged_in_page(browser, live_server.url, operator_user.username, viewport=DESKTOP)
            _operator_manages_silences_windows_and_rules(page, live_server.url, rule.pk)
            page.context.close()
            for username, viewport in ((operator_user.username, PHONE), (admin_user.username, PHONE)):
                phone, phone_errors = logged_in_page(browser, live_server.url, username, viewport=viewport)
                phone.goto(f"{live_server.url}/alerting/")
                expect(phone.locator("#rule-list li", has_text="alpha availability")).to_have_count(1)
                assert not scrolls_sideways(phone), username
                errors.extend(phone_errors)
                phone.context.close()

            page, admin_errors = logged_in_page(browser, live_server.url, admin_user.username, viewport=DESKTOP)
            _admin_adds_a_channel_and_sends_a_test(page, live_server.url, receiver)
            errors.extend(admin_errors)
            page.context.close()

            for viewport in (DESKTOP, PHONE):
                page, viewer_errors = logged_in_page(browser, live_server.url, viewer_user.username, viewport=viewport)
                page.goto(f"{live_server.url}/alerting/")
                expect(page.locator("#silence-list li", has_text="server down on exchange-alpha")).to_contain_text(
                    "upgrading alpha"
                )
                expect(page.locator("#window-list li", has_text="upgrade beta")).to_contain_text("ended")
                expect(page.locator("#rule-list li", has_text="alpha availability")).to_have_count(1)
                expect(page.locator("#alerting form.alerting-form")).to_have_count(0)
                expect(page.locator("#alerting button")).to_have_count(0)
                expect(page.locator("#channels")).to_contain_text("an admin manages them")
                expect(page.locator("#channel-list")).to_have_count(0)
                assert not scrolls_sideways(page), viewport
                errors.extend(viewer_errors)
                page.context.close()
        # Chromium logs each 400 the test asked for (a field named by the API) as "Failed to load resource": those
        # three, once each, and nothing else.
        asked = ["/api/health/maintenance/", "/api/alerts/rules/", "/api/alerts/channels/"]
        bad_requests = [e for e in errors if "status of 400 (Bad Request)" in e]
        assert sorted(path for e in bad_requests for path in asked if e.endswith(f"{path})")) == sorted(asked)
        assert len(bad_requests) == 3 and [e for e in errors if e not in bad_requests] == [], errors
        ((headers, body),) = receiver.received
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Orchestrator-Signature"], expected)
    finally:
        receiver.close()
        receiver.server.server_close()
    # The rows the page made are the ones alerting and the monitor read.
    (silence,) = Silence.objects.all()
    assert (silence.rule.name, silence.server.name, silence.created_by) == (
        "server down",
        "exchange-alpha",
        "oscar-operator",
    )
    (window,) = MaintenanceWindow.objects.all()
    assert [s.name for s in window.servers.all()] == ["exchange-beta"]
    made = AlertRule.objects.get(name="alpha availability")
    assert (made.kind, made.threshold, made.servers) == ("availability", 0.995, ["exchange-alpha"])
    assert NotificationChannel.objects.get().secret == SECRET
    assert NotificationDelivery.objects.get().payload["status"] == "test"
