"""Text from servers stays text in the charts, and every page runs under the Content-Security-Policy, in Chromium.

One `manage.py serve --demo` and one browser for the module: the demo's fleet plus a server whose tool answers with
markup (its error text reaches the health page's check chart as hover text).
"""

from __future__ import annotations

import json
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.demo_process import RunningDemo, running_demo
from tests.e2e.test_dashboard_in_a_browser import CHROMIUM, CHROMIUM_ARGS
from tests.waiting import wait_for

# The demo's start, the server's first failing check and two dozen page loads.
pytestmark = pytest.mark.timeout(300)

MARKUP = '<b>bold</b><a href="http://127.0.0.1:9/x">link</a>'
SERVER = "markup-teller"
WELL_BEHAVED = Path(__file__).resolve().parent.parent / "mcp_servers" / "well_behaved.py"

# Collects the browser's CSP reports from the first moment of every document (an init script is not subject to CSP).
CATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile);
});
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    with running_demo(tmp_path_factory.mktemp("csp-demo")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Chromium is installed by `make test` (apt package chromium)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _api(demo: RunningDemo, token: str | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    headers = {"Accept": "application/json"}
    data = None
    if token:
        headers["Authorization"] = f"Token {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(demo.base_url + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _token(demo: RunningDemo) -> str:
    form = urllib.parse.urlencode({"username": demo.username, "password": demo.password}).encode()
    request = urllib.request.Request(demo.base_url + "/api/auth/token/", data=form, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["token"]


def _log_in(page: Page, demo: RunningDemo) -> None:
    page.goto(demo.base_url + "/accounts/login/")
    page.fill("input[name=username]", demo.username)
    page.fill("input[name=password]", demo.password)
    page.click("button[type=submit]")
    expect(page.locator("tr[data-server]").first).to_be_visible()


def test_it_shows_a_servers_markup_in_a_chart_hover_label_as_literal_text(demo, browser):
    token = _token(demo)
    # A real MCP server whose tool answers an error carrying the markup; the health monitor's synthetic check
    # calls it, and the failure's text is what the check chart shows on hover.
    _api(
        demo,
        token,
        "POST",
        "/api/servers/?discover=false",
        {
            "name": SERVER,
            "transport": "stdio",
            "command": sys.executable,
            "args": [str(WELL_BEHAVED), "stdio"],
            "metadata": {
                "health": {"interval_seconds": 2, "synthetic": {"tool": "fail", "arguments": {"message": MARKUP}}}
            },
        },
    )

    def failed_check_with_markup() -> bool:
        samples = _api(demo, token, "GET", f"/api/health/{SERVER}/samples/?limit=50")["results"]
        return any(MARKUP in (sample.get("error") or "") for sample in samples)

    wait_for(failed_check_with_markup, timeout=60, what="a failed synthetic check carrying the server's markup")

    context = browser.new_context()
    try:
        page = context.new_page()
        _log_in(page, demo)
        page.goto(f"{demo.base_url}/health/{SERVER}/")
        # A function, not an expression: Playwright polls an expression with eval, which the page's CSP refuses.
        page.wait_for_function(
            """() => {
              var gd = document.getElementById("timeline-chart");
              return !!(gd && gd.data && gd.data[0].text.some(function (t) { return t.indexOf("bold") >= 0; }));
            }""",
            timeout=30_000,
        )
        # Hover and read the label in one turn of the event loop: the page redraws on every check.
        label = page.evaluate(
            """() => {
              var gd = document.getElementById("timeline-chart");
              var index = gd.data[0].text.findIndex(function (t) { return t.indexOf("bold") >= 0; });
              Plotly.Fx.hover(gd, [{ curveNumber: 0, pointNumber: index }]);
              var hover = gd.querySelector(".hoverlayer .hovertext");
              if (!hover) return null;
              return {
                text: hover.textContent,
                links: hover.querySelectorAll("a").length,
                bold: Array.from(hover.querySelectorAll("tspan")).filter(function (t) {
                  return /bold/.test(t.getAttribute("style") || "");
                }).length,
                anyLinkInCharts: document.querySelectorAll(".js-plotly-plot a").length,
              };
            }"""
        )
        assert label is not None, "no hover label appeared"
        assert MARKUP in label["text"], label
        assert label["links"] == 0 and label["bold"] == 0, label
        assert label["anyLinkInCharts"] == 0, label
    finally:
        context.close()


def test_every_page_carries_the_csp_and_none_reports_a_violation(demo, browser):
    context = browser.new_context()
    context.add_init_script(CATCH_VIOLATIONS)
    console: list[str] = []
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: console.append(f"{m.type}: {m.text} ({m.location['url']})"))
        page.on("pageerror", lambda error: errors.append(f"{error} ({page.url})"))
        seen: dict[str, str] = {}

        def no_violations() -> None:
            # Read before the next navigation, which starts a new list.
            violations = page.evaluate("window.__cspViolations")
            assert violations == [], (page.url, violations)

        def visit(path: str, ready: str) -> None:
            response = page.goto(demo.base_url + path)
            assert response is not None and response.status == 200, (path, response and response.status)
            seen[path] = response.headers.get("content-security-policy", "")
            expect(page.locator(ready).first).to_be_attached(timeout=30_000)
            page.wait_for_load_state("networkidle")
            no_violations()

        visit("/accounts/login/", "input[name=password]")
        _log_in(page, demo)
        expect(page.locator("#live-indicator")).to_contain_text("live", timeout=30_000)
        visit("/", "tr[data-server]")
        visit("/servers/exchange-alpha/", "#latency-chart .main-svg")
        visit("/health/", "#health-rows tr")
        visit("/health/exchange-alpha/", "#timeline-chart .main-svg")
        visit("/pipeline/", "#rate-chart .main-svg")
        visit("/fusion/", "#fusion-form")
        page.click("#fusion-form button[type=submit]")
        expect(page.locator("#fusion-chart .main-svg").first).to_be_attached(timeout=30_000)
        no_violations()
        visit("/coordinator/", "#arbitrage-form")
        page.click("#arbitrage-form button[type=submit]")
        page.wait_for_url(re.compile(r"/coordinator/operations/\d+/"), timeout=30_000)
        expect(page.locator("#quote-chart .main-svg").first).to_be_attached(timeout=30_000)
        no_violations()
        visit(urllib.parse.urlparse(page.url).path, "#quote-chart .main-svg")
        visit("/admin/", "#content")
        visit("/admin/registry/server/", "#result_list")
        visit("/admin/registry/server/add/", "form")
        # The Swagger UI has drawn the schema: its start script ran under the policy.
        visit("/api/docs/", ".swagger-ui .opblock")

        for path, policy in seen.items():
            assert "script-src 'self';" in policy and "default-src 'self'" in policy, (path, policy)
            assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy, (path, policy)
            assert re.search(r"connect-src 'self' ws://127\.0\.0\.1:\d+ wss://127\.0\.0\.1:\d+", policy), (path, policy)
        assert not errors, errors
        # The browser's own request for /favicon.ico from pages without an icon link (the admin's) is no page error.
        messages = [line for line in console if not line.endswith("/favicon.ico)")]
        assert not messages, messages
    finally:
        context.close()
