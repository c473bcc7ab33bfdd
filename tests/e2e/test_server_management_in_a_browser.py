"""Managing servers from the dashboard in Chromium: an operator adds an HTTP server after testing the connection,
sees it discovered, edits, disables, enables and removes it; an invalid URL is named at its field; no stdio for an
operator; a server holding secrets names them "set, hidden" and is locked for operators. A viewer gets no controls
and the API refuses them. An admin previews an import (nothing changes) and applies it, and downloads the export.
At 1280 and 390 px, without sideways scrolling and without console errors."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from registry.services import server_create
from tests.browser import DESKTOP, PHONE, ConsoleErrors, open_browser, scrolls_sideways
from tests.conftest import PASSWORD
from tests.exchanges import EXCHANGE_HOST
from tests.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

SECRET = "sk-browser-secret-5150"
NOWHERE = "http://127.0.0.1:9/mcp"


def _page(
    browser: Browser, base_url: str, username: str, viewport: dict[str, int], sockets: list[WebSocketRoute]
) -> tuple[Page, ConsoleErrors]:
    """Logged in as `username`. live_server speaks no WebSocket: /ws/events/ is answered in the browser (routed
    before any page opens it), so the test pushes the fleet.status events the pipeline would."""
    context = browser.new_context(viewport=viewport, accept_downloads=True)
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


def _push_status(sockets: list[WebSocketRoute], server: str, status: str, reason: str) -> None:
    event = {
        "stream": "fleet.status",
        "seq": 10_000,
        "kind": "status",
        "server": server,
        "payload": {"server": server, "status": status, "status_reason": reason, "last_seen_at": None},
    }
    for socket in sockets:
        socket.send(json.dumps({"type": "batch", "events": [event]}))


def _unexpected(errors: ConsoleErrors, path: str) -> list[str]:
    """Console errors but the ones the test asks for: Chromium logs the API's 400 (the answer that names the field
    or the entry) as "Failed to load resource"."""
    expected = "status of 400 (Bad Request) ("
    return [error for error in errors if not (expected in error and path in error)]


def _csrf(page: Page) -> str:
    return next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")


def test_an_operator_manages_an_http_server_and_a_viewer_cannot(live_server, live_fleet, operator_user, viewer_user):
    exchange_url = EXCHANGE_HOST.fresh_exchange_url("--profile", "alpha", "--no-outages", "--error-rate", "0")
    server_create(name="keyed", transport="http", url=NOWHERE, headers={"X-Api-Key": SECRET})
    base = live_server.url
    with open_browser() as browser:
        sockets: list[WebSocketRoute] = []
        page, errors = _page(browser, base, operator_user.username, DESKTOP, sockets)
        page.get_by_role("link", name="Add server").click()
        page.wait_for_url("**/add-server/")
        expect(page.locator("#field-transport option")).to_have_count(2)  # http and sse
        expect(page.locator('#field-transport option[value="stdio"]')).to_have_count(0)
        expect(page.locator("#field-command")).to_have_count(0)

        # A URL that is not one: said at the URL field, by the API's validation.
        page.fill("#field-name", "zeta")
        page.fill("#field-url", "not a url")
        page.click("#test-connection")
        url_error = page.locator('[data-error-for="url"]')
        expect(url_error).to_be_visible()
        expect(url_error).to_contain_text("valid URL")
        expect(page.locator('[data-field="url"]')).to_have_class("field field-wide field-invalid")

        # Test connection: the handshake's result before anything is saved.
        page.fill("#field-url", exchange_url)
        page.fill("#field-tags", "quotes, test")
        page.click("#test-connection")
        result = page.locator("#connection-result")
        expect(result).to_have_attribute("data-ok", "true", timeout=30_000)
        expect(result).to_contain_text("Connected")
        expect(result).to_contain_text("Protocol")
        expect(result).to_contain_text("get_quote")
        expect(url_error).to_be_hidden()
        assert page.request.get(base + "/api/servers/zeta/").status == 404  # nothing saved by the test

        # Save: the server page follows its discovery live.
        page.click("#save-server")
        page.wait_for_url("**/servers/zeta/")
        progress = page.locator("#discovery-progress")
        expect(progress).to_be_visible()
        wait_for(
            lambda: page.request.get(base + "/api/servers/zeta/capabilities/").status == 200,
            what="zeta discovered by the fleet",
        )
        _push_status(sockets, "zeta", "online", "connected")
        expect(progress).to_have_attribute("data-state", "discovered", timeout=15_000)
        expect(progress).to_contain_text("Discovered")
        expect(progress).to_contain_text("tools")

        # Edit: the form comes back with what is stored.
        page.get_by_role("link", name="Edit").click()
        page.wait_for_url("**/servers/zeta/edit/")
        expect(page.locator("#field-url")).to_have_value(exchange_url)
        expect(page.locator("#field-tags")).to_have_value("quotes, test")
        page.fill("#field-display_name", "Zeta exchange")
        page.click("#save-server")
        page.wait_for_url("**/servers/zeta/")
        expect(page.locator("h1")).to_contain_text("Zeta exchange")

        # Disable, enable, remove.
        page.click('[data-action="disable"]')
        expect(page.locator('[data-action="enable"]')).to_be_visible()
        assert page.request.get(base + "/api/servers/zeta/").json()["enabled"] is False
        page.click('[data-action="enable"]')
        expect(page.locator('[data-action="disable"]')).to_be_visible()
        assert page.request.get(base + "/api/servers/zeta/").json()["enabled"] is True
        page.click('[data-action="remove"]')
        page.click('[data-action="remove-confirmed"]')
        page.wait_for_url(base + "/")
        expect(page.locator('tr[data-server="zeta"]')).to_have_count(0)
        assert page.request.get(base + "/api/servers/zeta/").status == 404

        # A server holding secrets: named, never shown; locked for an operator, with the reason.
        page.goto(base + "/servers/keyed/edit/")
        expect(page.locator("#locked-reason")).to_contain_text("holds secrets")
        expect(page.locator(".secret-stored")).to_contain_text("X-Api-Key")
        expect(page.locator(".secret-stored")).to_contain_text("set, hidden")
        expect(page.locator("#save-server")).to_be_disabled()
        assert SECRET not in page.content()
        assert _unexpected(errors, "/api/servers/test-connection/") == [], errors
        assert len(errors) == 1  # the invalid URL's 400

        # At 390 px the form, the server page and the overview fit.
        phone, phone_errors = _page(browser, base, operator_user.username, PHONE, [])
        for path in ("/add-server/", "/servers/keyed/", "/servers/keyed/edit/", "/import-export/", "/"):
            phone.goto(base + path)
            assert not scrolls_sideways(phone), path
        phone.goto(base + "/add-server/")
        expect(phone.locator("#save-server")).to_be_enabled()
        assert phone_errors == [], phone_errors

        # A viewer: no controls, and the API refuses.
        for viewport in (DESKTOP, PHONE):
            viewer, viewer_errors = _page(browser, base, viewer_user.username, viewport, [])
            expect(viewer.locator("tr[data-server=keyed]")).to_have_count(1)
            expect(viewer.get_by_role("link", name="Add server")).to_have_count(0)
            expect(viewer.get_by_role("link", name="Import/Export")).to_have_count(0)
            viewer.goto(base + "/servers/keyed/")
            expect(viewer.locator("#discovery-progress")).to_be_visible()
            expect(viewer.locator("#server-actions")).to_have_count(0)
            assert not scrolls_sideways(viewer)
            refused = viewer.request.post(
                base + "/api/servers/",
                data=json.dumps({"name": "sneaky", "transport": "http", "url": NOWHERE}),
                headers={"Content-Type": "application/json", "X-CSRFToken": _csrf(viewer), "Referer": base + "/"},
            )
            assert refused.status == 403, refused.text()
            assert "operator" in refused.json()["detail"]
            assert viewer.request.get(base + "/add-server/").status == 403
            assert viewer_errors == [], viewer_errors


def test_an_admin_previews_an_import_before_applying_it(live_server, admin_user, operator_user):
    server_create(name="alpha-http", transport="http", url=NOWHERE, headers={"Authorization": SECRET}, priority=5)
    base = live_server.url
    with open_browser() as browser:
        page, errors = _page(browser, base, admin_user.username, DESKTOP, [])
        page.goto(base + "/import-export/")

        # The export, downloaded: no secret unless asked for.
        with page.expect_download() as download:
            page.click("#export-link")
        exported = json.loads(open(download.value.path()).read())  # noqa: SIM115 - read once
        assert exported["format"] == "mcp-orchestrator/registry"
        assert [entry["name"] for entry in exported["servers"]] == ["alpha-http"]
        assert SECRET not in json.dumps(exported)

        # A document with one change and one new server: previewed, nothing changes until applied.
        exported["servers"][0]["priority"] = 50
        exported["servers"].append({"name": "beta-http", "transport": "sse", "url": "http://127.0.0.1:9/sse"})
        for entry in exported["servers"]:
            entry.pop("env_keys", None)
            entry.pop("header_keys", None)
        page.fill("#import-text", json.dumps(exported))
        page.click("#import-preview")
        report = page.locator("#import-report")
        expect(report).to_have_attribute("data-state", "preview")
        expect(report.locator('[data-group="created"]')).to_contain_text("beta-http")
        expect(report.locator('[data-group="updated"]')).to_contain_text("alpha-http")
        assert page.request.get(base + "/api/servers/beta-http/").status == 404
        assert page.request.get(base + "/api/servers/alpha-http/").json()["priority"] == 5

        page.click("#import-apply")
        expect(report).to_have_attribute("data-state", "applied")
        expect(report.locator('[data-group="created"]')).to_contain_text("beta-http")
        assert page.request.get(base + "/api/servers/beta-http/").status == 200
        assert page.request.get(base + "/api/servers/alpha-http/").json()["priority"] == 50
        expect(page.locator("#import-apply")).to_be_disabled()

        # A bad entry: refused with its entry and field named; nothing to apply.
        exported["servers"][1]["url"] = "http://10.9.9.9/sse"
        page.fill("#import-text", json.dumps(exported))
        page.click("#import-preview")
        expect(report).to_have_attribute("data-state", "refused")
        expect(report.locator('[data-group="refused"]')).to_contain_text("servers[1]")
        expect(report.locator('[data-group="refused"]')).to_contain_text("url")
        expect(page.locator("#import-apply")).to_be_disabled()
        assert _unexpected(errors, "/api/registry/import/?dry_run=true") == [], errors
        assert len(errors) == 1  # the refused document's 400

        # An operator exports but does not import; the page fits a phone.
        phone, phone_errors = _page(browser, base, operator_user.username, PHONE, [])
        phone.goto(base + "/import-export/")
        expect(phone.locator("#import-needs-admin")).to_be_visible()
        expect(phone.locator("#import-form")).to_have_count(0)
        expect(phone.locator("#export-secrets")).to_have_count(0)
        assert not scrolls_sideways(phone)
        assert phone_errors == [], phone_errors
