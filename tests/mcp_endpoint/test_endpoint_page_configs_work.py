"""What the MCP endpoint page gives to paste works as given: the site served by uvicorn as `serve` runs it (pages and
/mcp/ on one port), a live fleet with a demo exchange, a token made on the page in Chromium, then the page's own
Python example (run as a script with this machine's SDK) and its curl command (run by bash) against /mcp/, and the
example for the picked server against /mcp/servers/<name>/ (its tools under their own names). After
"Revoke" on the page, curl gets a 401 with its WWW-Authenticate header and the example fails. As an operator and as
a viewer (a viewer's token lists too)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from playwright.sync_api import Browser, Page, expect

from registry.models import Server, ServerStatus
from tests.browser import DESKTOP, ConsoleErrors, open_browser
from tests.conftest import PASSWORD
from tests.exchanges import register_exchange, wait_discovered
from tests.mcp_endpoint.live_server import serving
from tests.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


class _AsServed:
    """The site as `serve` serves it: with its static files (the page's script), and the MCP endpoint stopped first
    on the way out."""

    def __init__(self) -> None:
        from orchestrator_site.asgi import application

        self._site = application
        self._with_static_files = ASGIStaticFilesHandler(application)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._with_static_files(scope, receive, send)

    async def stop(self) -> None:
        await self._site.stop()


def _endpoint_page(browser: Browser, base_url: str, username: str) -> tuple[Page, ConsoleErrors]:
    page = browser.new_context(viewport=DESKTOP).new_page()
    errors = ConsoleErrors()
    errors.watch(page)
    page.goto(base_url + "/accounts/login/?next=/mcp-endpoint/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/mcp-endpoint/")
    return page, errors


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90, check=False)


def _run_curl(command: str) -> subprocess.CompletedProcess[str]:
    # As shown, plus -i for the status line.
    return subprocess.run(["bash", "-c", command + " -i"], capture_output=True, text=True, timeout=60, check=False)


def test_the_pasted_configurations_reach_the_fleet_and_stop_at_revoke(live_fleet, operator_user, viewer_user):
    register_exchange("exchange-alpha")
    wait_discovered(live_fleet, "exchange-alpha")
    wait_for(
        lambda: Server.objects.get(name="exchange-alpha").status == ServerStatus.ONLINE, what="exchange-alpha online"
    )
    with serving(_AsServed()) as base_url, open_browser() as browser:
        for username in (operator_user.username, viewer_user.username):
            page, errors = _endpoint_page(browser, base_url, username)
            expect(page.locator("#aggregate-url")).to_have_text(base_url + "/mcp/")
            page.locator("#token-create").click()
            expect(page.locator("#token-new")).to_be_visible()
            key = page.locator("#token-key").inner_text()
            python = page.locator("#config-python").inner_text()
            curl = page.locator("#config-curl").inner_text()
            assert key in python and key in curl

            listed = _run_python(python)
            assert listed.returncode == 0, listed.stderr[-2000:]
            assert "exchange-alpha__get_quote" in listed.stdout.splitlines(), listed.stdout
            initialized = _run_curl(curl)
            assert initialized.returncode == 0, initialized.stderr
            assert initialized.stdout.startswith("HTTP/1.1 200"), initialized.stdout[:500]
            assert '"serverInfo"' in initialized.stdout and '"protocolVersion"' in initialized.stdout

            # The picked server alone, under its own names.
            page.locator("input[name=config-target][value=passthrough]").check()
            passthrough = page.locator("#config-python").inner_text()
            assert f'URL = "{base_url}/mcp/servers/exchange-alpha/"' in passthrough
            listed_alone = _run_python(passthrough)
            assert listed_alone.returncode == 0, listed_alone.stderr[-2000:]
            assert "get_quote" in listed_alone.stdout.splitlines(), listed_alone.stdout
            assert "exchange-alpha__get_quote" not in listed_alone.stdout

            page.locator("#token-revoke").click()
            page.locator("#token-confirm-yes").click()
            expect(page.locator("#token-status")).to_have_text("You have no API token.")
            refused = _run_python(python)
            # The SDK says only "Server returned an error response"; curl below shows the 401 itself.
            assert refused.returncode != 0 and refused.stdout == "", (refused.stdout, refused.stderr[-2000:])
            assert "MCPError" in refused.stderr, refused.stderr[-2000:]
            refused_curl = _run_curl(curl)
            assert refused_curl.stdout.startswith("HTTP/1.1 401"), refused_curl.stdout[:500]
            assert "www-authenticate: bearer" in refused_curl.stdout.lower()
            assert errors == [], errors
            page.context.close()
