"""A server behind OAuth added in Chromium: the operator fills the form's OAuth part (authorization code, client
registered dynamically), saves, and is sent to the authorization server at once (which approves without asking, like
the conformance suite's) and back through /oauth/callback/ to the server page, authorized; the server comes online.
A bad OAuth part is named at its field. No console errors, no token or secret on any page."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from playwright.sync_api import expect

from registry.models import OAuthGrant, Server
from registry.oauth_crypto import decrypt
from tests.browser import DESKTOP, ConsoleErrors, open_browser
from tests.conftest import PASSWORD
from tests.registry.test_oauth_servers import ProtectedServer
from tests.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


T = TypeVar("T")


def _db(read: Callable[[], T]) -> T:
    """An ORM read from the test: Playwright's sync API runs an event loop on this thread, so in another one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(read).result()


def _status() -> str:
    return Server.objects.get(name="guarded").status


def _token() -> tuple[str, str]:
    column = OAuthGrant.objects.get(server__name="guarded").access_token
    return decrypt(column), column


@pytest.fixture
def protected():
    server = ProtectedServer()
    yield server
    server.stop()


def test_an_operator_adds_a_server_behind_oauth_and_authorizes_it(live_server, live_fleet, operator_user, protected):
    with open_browser() as browser:
        # live_server speaks no WebSocket: /ws/events/ is answered in the browser (nothing is pushed on it here).
        context = browser.new_context(viewport=DESKTOP)
        context.route_web_socket("**/ws/events/", lambda socket: None)
        page = context.new_page()
        errors = ConsoleErrors()
        errors.watch(page)
        page.goto(live_server.url + "/accounts/login/")
        page.fill("input[name=username]", operator_user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        page.goto(live_server.url + "/add-server/")
        page.fill("#field-name", "guarded")
        page.fill("#field-url", protected.url)
        page.locator("#oauth-section summary").click()
        # A client ID metadata document must be https: said at its field, by the API's validation.
        page.select_option("#field-oauth-grant", "authorization_code")
        page.select_option("#field-oauth-registration", "metadata_document")
        page.fill("#field-oauth-client_metadata_url", "http://plain.test/client.json")
        page.click("#save-server")
        expect(page.locator('[data-error-for="oauth.client_metadata_url"]')).to_contain_text("https")
        assert not _db(Server.objects.filter(name="guarded").exists)

        page.select_option("#field-oauth-registration", "dynamic")
        page.fill("#field-oauth-client_metadata_url", "")
        page.click("#save-server")
        # Saved, then off to the authorization server and back: the server page says so.
        page.wait_for_url("**/servers/guarded/", timeout=30_000)
        expect(page.locator(".messages, .message, [role=status]").first).to_contain_text("authorized")
        token, column = _db(_token)
        assert token and token not in column
        wait_for(lambda: _db(_status) == "online", timeout=30, what="online")
        page.reload()
        expect(page.locator("#oauth-state")).to_contain_text("authorized")
        assert token not in page.content()
        page.goto(live_server.url + "/servers/guarded/edit/")
        assert token not in page.content()
        expect(page.locator("#field-oauth-grant")).to_have_value("authorization_code")
        unexpected = [error for error in errors if "status of 400" not in error]
        assert not unexpected, unexpected
