"""The MCP endpoint page in Chromium, as an operator and a viewer at 1280 and 390 px: both addresses built from the
request (the pass-through one following the server picker, enabled servers only, each with its status), what the
role allows, a token created (the key shown once, every configuration filled in with it, the key working on the
REST API), copied, hidden after a reload, replaced (asked first; the old key refused) and revoked (the key refused);
no console error and no sideways scroll.

The page needs no fleet: the servers are rows, and the token goes through /api/auth/my-token/.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Browser, Page, expect

from registry.models import Server, ServerStatus
from registry.services import server_create
from tests.browser import DESKTOP, PHONE, ConsoleErrors, open_browser, scrolls_sideways
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

PLACEHOLDER = "<YOUR_TOKEN>"
# The longest name a server may have: the picker and its address must still fit a phone.
LONG_NAME = "a-server-with-a-name-as-long-as-the-registry-allows-" + "x" * 48
CONFIGS = ("#config-claude-code", "#config-mcp-servers", "#config-vscode", "#config-python", "#config-curl")


def _servers() -> None:
    idle = "http://127.0.0.1:9/mcp"
    for name, status, enabled in (
        ("exchange-alpha", ServerStatus.ONLINE, True),
        ("clock", ServerStatus.OFFLINE, True),
        (LONG_NAME, ServerStatus.MAINTENANCE, True),
        ("retired", ServerStatus.DISABLED, False),
    ):
        server = server_create(name=name, transport="http", url=idle, server_type="exchange", enabled=enabled)
        Server.objects.filter(pk=server.pk).update(status=status)


def _endpoint_page(
    browser: Browser, base_url: str, username: str, viewport: dict[str, int]
) -> tuple[Page, ConsoleErrors]:
    """Logged in straight to the page (it opens no WebSocket, which live_server does not speak)."""
    page = browser.new_context(viewport=viewport).new_page()
    errors = ConsoleErrors()
    errors.watch(page)
    page.goto(base_url + "/accounts/login/?next=/mcp-endpoint/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/mcp-endpoint/")
    return page, errors


def _api_status(base_url: str, key: str) -> int:
    """GET /api/servers/ with the key alone (no cookie), from outside the browser."""
    request = urllib.request.Request(base_url + "/api/servers/", headers={"Authorization": f"Token {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _configs(page: Page) -> list[str]:
    return [page.locator(selector).inner_text() for selector in CONFIGS]


def _fits(page: Page, width: int) -> None:
    assert not scrolls_sideways(page)
    for selector in ("#aggregate-url", "#server-picker", "#passthrough-url", "#token-key", *CONFIGS):
        box = page.locator(selector).bounding_box()
        if box is not None:  # hidden: no box
            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (selector, box)


def _check_addresses(page: Page, base_url: str, operator: bool, width: int) -> None:
    expect(page.locator(".nav-links a[aria-current=page]")).to_have_text("MCP endpoint")
    expect(page.locator("#aggregate-url")).to_have_text(base_url + "/mcp/")
    picker = page.locator("#server-picker")
    # Enabled servers only, each with its status; the first picked.
    expect(picker.locator("option")).to_have_text(
        [f"{LONG_NAME} (maintenance)", "clock (offline)", "exchange-alpha (online)"]
    )
    expect(page.locator("#passthrough-url")).to_have_text(f"{base_url}/mcp/servers/{LONG_NAME}/")
    expect(page.locator("#server-status")).to_have_text("Maintenance")
    _fits(page, width)
    picker.select_option("clock")
    expect(page.locator("#passthrough-url")).to_have_text(base_url + "/mcp/servers/clock/")
    expect(page.locator("#server-status")).to_have_text("Offline")
    picker.select_option("exchange-alpha")
    expect(page.locator("#passthrough-url")).to_have_text(base_url + "/mcp/servers/exchange-alpha/")
    expect(page.locator("#server-status")).to_have_text("Online")
    expect(page.locator("#server-status")).to_have_class("badge status-online")
    note = page.locator("#role-note")
    if operator:
        expect(note).to_contain_text("operator")
        expect(note).to_contain_text("list, read and call")
    else:
        expect(note).to_contain_text("viewer")
        expect(note).to_contain_text("list and read")
        expect(note).to_contain_text("calling a tool needs an operator")
    expect(page.locator('[data-endpoint="aggregate"]')).to_contain_text("coordinator__arbitrage")
    expect(page.locator('[data-endpoint="passthrough"]')).to_contain_text("elicitation")


def _check_token(page: Page, base_url: str, width: int) -> None:
    status = page.locator("#token-status")
    expect(status).to_have_text("You have no API token.")
    expect(page.locator("#token-revoke")).to_be_hidden()
    claude = page.locator("#config-claude-code")
    expect(claude).to_have_text(
        f'claude mcp add --transport http orchestrator {base_url}/mcp/ --header "Authorization: Bearer {PLACEHOLDER}"'
    )
    assert all(PLACEHOLDER in text for text in _configs(page))

    # Create: the key shown once, with the warning, and filled into every configuration.
    page.locator("#token-create").click()
    key_shown = page.locator("#token-key")
    expect(key_shown).to_have_text(re.compile(r"^[0-9a-f]{40}$"))
    key = key_shown.inner_text()
    expect(page.locator("#token-new")).to_contain_text("it will not be shown again")
    expect(status).to_contain_text("You have an API token, created")
    expect(page.locator("#token-create")).to_have_text("Replace token")
    expect(page.locator("#token-revoke")).to_be_visible()
    expect(claude).to_contain_text(f"Bearer {key}")
    texts = _configs(page)
    assert all(key in text and PLACEHOLDER not in text for text in texts), texts
    assert f'"url": "{base_url}/mcp/"' in texts[1] and '"mcpServers"' in texts[1]
    assert '"type": "http"' in texts[2] and '"servers"' in texts[2]
    assert "httpx2.AsyncClient(headers=HEADERS" in texts[3] and "from mcp import Client" in texts[3]
    assert '"method":"initialize"' in texts[4] and f"curl -sS -X POST '{base_url}/mcp/'" in texts[4]
    assert _api_status(base_url, key) == 200
    _fits(page, width)

    # The copy button puts the key itself on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    page.locator('[data-copy="#token-key"]').click()
    expect(page.locator('[data-copy="#token-key"]')).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == key

    # Configurations for the picked server: its address and a name of its own.
    page.locator("input[name=config-target][value=passthrough]").check()
    expect(claude).to_have_text(
        "claude mcp add --transport http orchestrator-exchange-alpha "
        f'{base_url}/mcp/servers/exchange-alpha/ --header "Authorization: Bearer {key}"'
    )
    expect(page.locator("#config-vscode")).to_contain_text(f'"url": "{base_url}/mcp/servers/exchange-alpha/"')
    _fits(page, width)

    # Never shown again: after a reload only the date is left, and the placeholder.
    page.reload()
    expect(status).to_contain_text("You have an API token, created")
    expect(page.locator("#token-new")).to_be_hidden()
    expect(page.locator("#token-create")).to_have_text("Replace token")
    assert key not in page.content()
    assert all(PLACEHOLDER in text for text in _configs(page))

    # Replace: asked first (Cancel changes nothing), then a new key; the old one is refused.
    page.locator("#token-create").click()
    expect(page.locator("#token-confirm")).to_be_visible()
    page.locator("#token-confirm-no").click()
    expect(page.locator("#token-confirm")).to_be_hidden()
    assert _api_status(base_url, key) == 200
    page.locator("#token-create").click()
    page.locator("#token-confirm-yes").click()
    expect(page.locator("#token-result")).to_have_text("Replaced: the old token no longer works.")
    new_key = key_shown.inner_text()
    assert new_key != key and len(new_key) == 40
    expect(claude).to_contain_text(f"Bearer {new_key}")
    assert _api_status(base_url, key) == 401
    assert _api_status(base_url, new_key) == 200

    # Revoke: asked first, then the key is refused and the configurations go back to the placeholder.
    page.locator("#token-revoke").click()
    expect(page.locator("#token-confirm-yes")).to_have_text("Revoke token")
    page.locator("#token-confirm-yes").click()
    expect(status).to_have_text("You have no API token.")
    expect(page.locator("#token-result")).to_have_text("Revoked: the token no longer works.")
    expect(page.locator("#token-new")).to_be_hidden()
    expect(page.locator("#token-revoke")).to_be_hidden()
    expect(page.locator("#token-create")).to_have_text("Create token")
    assert all(PLACEHOLDER in text and new_key not in text for text in _configs(page))
    assert _api_status(base_url, new_key) == 401
    _fits(page, width)


def test_the_endpoint_page_for_operators_and_viewers(live_server, operator_user, viewer_user):
    _servers()
    with open_browser() as browser:
        for username, viewport in (
            (operator_user.username, DESKTOP),
            (viewer_user.username, PHONE),
            (operator_user.username, PHONE),
            (viewer_user.username, DESKTOP),
        ):
            page, errors = _endpoint_page(browser, live_server.url, username, viewport)
            _check_addresses(page, live_server.url, username == operator_user.username, viewport["width"])
            _fits(page, viewport["width"])
            _check_token(page, live_server.url, viewport["width"])
            assert errors == [], errors
            if username == viewer_user.username and viewport is DESKTOP:
                _check_a_refusal_is_said(page, errors)
            page.context.close()


def _check_a_refusal_is_said(page: Page, errors: list[str]) -> None:
    """Signed out meanwhile (in another tab, say): the API's refusal is said on the page, and no key appears."""
    page.context.clear_cookies()
    page.locator("#token-create").click()
    expect(page.locator("#token-result")).to_have_text(
        "Could not make a token: Authentication credentials were not provided."
    )
    expect(page.locator("#token-result")).to_have_class("form-status form-status-error")
    expect(page.locator("#token-new")).to_be_hidden()
    expect(page.locator("#token-status")).to_have_text("You have no API token.")
    # The browser logs the refused request itself; nothing else went wrong.
    assert len(errors) == 1 and "status of 401" in errors[0], errors
