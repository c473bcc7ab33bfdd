from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from fleet.application import FleetApplication
from orchestrator_site.asgi import application
from pipeline.delivery import bind_delivery_loop

GOOD_ORIGIN = b"http://127.0.0.1:8000"


def session_cookie(user: Any) -> str:
    client = Client()
    if user is not None:
        client.force_login(user)
    cookie = client.cookies.get(settings.SESSION_COOKIE_NAME)
    return f"{settings.SESSION_COOKIE_NAME}={cookie.value}" if cookie else ""


class Browser:
    """A WebSocket client on /ws/events/ through the real ASGI stack (origin check, session auth, consumer)."""

    def __init__(self, cookie: str) -> None:
        headers = [(b"origin", GOOD_ORIGIN), (b"host", b"127.0.0.1:8000")]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        self.communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers)
        self.frames: list[dict[str, Any]] = []

    async def connect(self) -> bool:
        connected, _ = await self.communicator.connect()
        return connected

    async def send(self, message: Any) -> None:
        await self.communicator.send_to(text_data=message if isinstance(message, str) else json.dumps(message))

    async def receive(self, within: float = 10.0) -> dict[str, Any]:
        frame = json.loads(await self.communicator.receive_from(timeout=within))
        self.frames.append(frame)
        return frame

    async def expect(self, kind: str, within: float = 10.0) -> dict[str, Any]:
        frame = await self.receive(within)
        assert frame["type"] == kind, frame
        return frame

    async def events_until(self, predicate: Any, within: float = 20.0) -> list[dict[str, Any]]:
        """Every event received until one satisfies `predicate` (gap frames are kept in `self.frames`)."""
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(within):
            while True:
                frame = await self.receive(within)
                if frame["type"] != "batch":
                    continue
                for event in frame["events"]:
                    events.append(event)
                    if predicate(event):
                        return events

    async def close(self) -> None:
        await self.communicator.disconnect()


@pytest.fixture
def browser_for():
    opened: list[Browser] = []

    async def open_browser(user: Any) -> Browser:
        browser = Browser(await sync_to_async(session_cookie)(user))
        opened.append(browser)
        return browser

    return open_browser


@pytest.fixture
async def running_pipeline(transactional_db):
    """The pipeline as serve runs it (in a fleet application, on the fleet loop; no fleet to produce from),
    delivering to sockets on this test's loop."""
    bind_delivery_loop(asyncio.get_running_loop())
    fleet = FleetApplication(supervise=False, producers=False, recovery=False)
    await asyncio.to_thread(fleet.start)
    yield fleet.pipeline
    await asyncio.to_thread(fleet.stop)
    bind_delivery_loop(None)
