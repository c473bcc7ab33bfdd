"""Trusted origins follow the address actually served: on a port other than 8000, a page at http://localhost:8000
(another program) can neither POST with the user's session nor open a WebSocket; the served address's other names
(localhost for 127.0.0.1) can."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as websocket_connect

from exchange_fleet.launcher import free_port
from orchestrator_site.asgi import application
from orchestrator_site.trusted_origins import served_origins, trust_served_origins

PORT = 8123
FOREIGN = "http://localhost:8000"
PASSWORD = "correct-horse-battery"  # the personas' password (tests/conftest.py)


def test_the_trusted_origins_follow_the_served_port(settings):
    assert served_origins("127.0.0.1", PORT) == [
        f"http://127.0.0.1:{PORT}",
        f"http://localhost:{PORT}",
        f"http://[::1]:{PORT}",
    ]
    assert served_origins("0.0.0.0", 9001) == ["http://127.0.0.1:9001", "http://localhost:9001", "http://[::1]:9001"]
    assert served_origins("orchestrator.internal", 8443) == ["http://orchestrator.internal:8443"]
    assert served_origins("127.0.0.2", 80)[0] == "http://127.0.0.2:80"

    settings.CSRF_TRUSTED_ORIGINS = ["https://orchestrator.example"]  # set explicitly: kept
    trusted = trust_served_origins("127.0.0.1", PORT)
    assert trusted == django_settings.CSRF_TRUSTED_ORIGINS
    assert trusted[0] == "https://orchestrator.example" and f"http://localhost:{PORT}" in trusted
    assert not any(origin.endswith(":8000") for origin in trusted)


def _csrf_client(origin: str) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True, HTTP_HOST=f"127.0.0.1:{PORT}", HTTP_ORIGIN=origin)
    client.get("/accounts/login/")
    return client, client.cookies[django_settings.CSRF_COOKIE_NAME].value


@pytest.mark.django_db
def test_a_session_post_with_another_ports_origin_fails_csrf(settings, admin_user):
    # What `serve --port 8123` does, on the default settings (through the fixture, so the change is undone).
    settings.CSRF_TRUSTED_ORIGINS = list(django_settings.CSRF_TRUSTED_ORIGINS)
    trust_served_origins("127.0.0.1", PORT)

    # The login form: a valid token, the wrong origin.
    client, token = _csrf_client(FOREIGN)
    form = {"username": admin_user.username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    refused = client.post("/accounts/login/", form)
    assert refused.status_code == 403 and b"CSRF" in refused.content
    client, token = _csrf_client(f"http://localhost:{PORT}")
    assert client.post("/accounts/login/", {**form, "csrfmiddlewaretoken": token}).status_code == 302

    # The API with a session (a logged-in browser): same.
    client, token = _csrf_client(FOREIGN)
    client.force_login(admin_user)
    server = {"name": "origin-check", "transport": "http", "url": "http://127.0.0.1:9/mcp"}
    refused = client.post("/api/servers/", server, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert refused.status_code == 403 and "Origin checking failed" in refused.json()["detail"]


async def _socket_opens(cookie: str, origin: bytes) -> bool:
    headers = [(b"host", f"127.0.0.1:{PORT}".encode()), (b"cookie", cookie.encode()), (b"origin", origin)]
    communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"


@pytest.mark.django_db(transaction=True)
async def test_a_websocket_from_another_ports_origin_is_refused(settings, viewer_user):
    settings.CSRF_TRUSTED_ORIGINS = list(django_settings.CSRF_TRUSTED_ORIGINS)
    trust_served_origins("127.0.0.1", PORT)
    cookie = await sync_to_async(_session_cookie)(viewer_user)
    assert not await _socket_opens(cookie, FOREIGN.encode())
    assert await _socket_opens(cookie, f"http://localhost:{PORT}".encode())
    assert await _socket_opens(cookie, f"http://127.0.0.1:{PORT}".encode())


# --- the real command ----------------------------------------------------------------------------------------------


@contextmanager
def _serving(var_dir: Path) -> Iterator[int]:
    """`manage.py serve` (no demo, DEBUG off) on a free port, with an admin `origin-admin`."""
    port = free_port()
    drop = ("DATABASE_URL", "REDIS_URL", "CSRF_TRUSTED_ORIGINS", "DEBUG")
    env = {name: value for name, value in os.environ.items() if name not in drop}
    env.update(
        ORCHESTRATOR_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="orchestrator_site.settings",
        SECRET_KEY="test-only-key-for-the-served-origins-test",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    manage = [sys.executable, str(Path(django_settings.BASE_DIR) / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, timeout=180)
    subprocess.run(
        [*manage, "createsuperuser", "--noinput", "--username", "origin-admin", "--email", "a@example.com"],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    process = subprocess.Popen(
        [*manage, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Dashboard:" in line:
                break
        assert output and "Dashboard:" in output[-1], "serve did not start:\n" + "".join(output)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _post_login(port: int, origin: str, cookies: dict[str, str], fields: dict[str, str]) -> tuple[int, dict[str, str]]:
    """POST the login form with an Origin; the status and the cookies it set (Secure ones too: this is plain HTTP
    to a test server, so they are read from the headers, not kept by a cookie jar)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/accounts/login/",
        data=urllib.parse.urlencode(fields).encode(),
        headers={"Origin": origin, "Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())},
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        response = urllib.request.build_opener(NoRedirect).open(request, timeout=20)
    except urllib.error.HTTPError as error:
        response = error
    return response.status, _cookies(response.headers.get_all("Set-Cookie") or [])


def _cookies(headers: list[str]) -> dict[str, str]:
    return dict(re.match(r"([^=]+)=([^;]*)", header).groups() for header in headers)


def test_the_serve_command_trusts_its_own_port_only(tmp_path: Path):
    with _serving(tmp_path) as port:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=20) as page:
            cookies = _cookies(page.headers.get_all("Set-Cookie"))
        fields = {"username": "origin-admin", "password": PASSWORD, "csrfmiddlewaretoken": cookies["csrftoken"]}

        status, _ = _post_login(port, FOREIGN, cookies, fields)
        assert status == 403
        # Another name of the served address (not the page's own origin: only the served list admits it).
        status, logged_in = _post_login(port, f"http://localhost:{port}", cookies, fields)
        assert status == 302 and "sessionid" in logged_in

        session = f"sessionid={logged_in['sessionid']}"
        with pytest.raises(InvalidStatus) as refused:
            websocket_connect(
                f"ws://127.0.0.1:{port}/ws/events/", origin=FOREIGN, additional_headers={"Cookie": session}
            )
        assert refused.value.response.status_code == 403
        with websocket_connect(
            f"ws://127.0.0.1:{port}/ws/events/",
            origin=f"http://localhost:{port}",
            additional_headers={"Cookie": session},
        ) as socket:
            assert socket.protocol.state.name == "OPEN"
