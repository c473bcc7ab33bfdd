"""Headless Chromium for the browser tests: one way to open it, log in, and catch console errors.

Playwright's sync API leaves an event loop in the test's thread while it is open, and Django then refuses ORM calls
there: set up rows before `open_browser()` (or read them afterwards, or in another thread).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@contextmanager
def open_browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Chromium is installed by `make test` (apt package chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class ConsoleErrors(list[str]):
    """Errors the page reported (console errors and uncaught exceptions), favicon misses aside."""

    def watch(self, page: Page) -> None:
        page.on(
            "console",
            lambda message: (
                self.append(f"{message.type}: {message.text} ({message.location.get('url')})")
                if message.type == "error" and "favicon.ico" not in str(message.location.get("url"))
                else None
            ),
        )
        page.on("pageerror", lambda error: self.append(f"uncaught: {error}"))


def logged_in_page(
    browser: Browser, base_url: str, username: str, *, viewport: dict[str, int] = DESKTOP, password: str = PASSWORD
) -> tuple[Page, ConsoleErrors]:
    """A new page (its own cookies) logged in as `username`, watching for console errors."""
    page = browser.new_context(viewport=viewport).new_page()
    errors = ConsoleErrors()
    errors.watch(page)
    page.goto(base_url + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    return page, errors


def scrolls_sideways(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth"))
