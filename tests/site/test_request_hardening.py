"""Request hardening: failed logins throttled, absurd bodies and parameters answered 400 (never 500), WebSocket
origins compared exactly."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from rest_framework.authtoken.models import Token

from orchestrator_site.asgi import application
from orchestrator_site.json_limits import json_depth_exceeds
from registry.services import server_create

PASSWORD = "correct-horse-battery"  # the personas' password (tests/conftest.py)


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()
    yield
    cache.clear()


# --- login throttling ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_login_page_stops_a_guesser_even_with_the_right_password(client, viewer_user):
    for _ in range(settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT):
        response = client.post("/accounts/login/", {"username": viewer_user.username, "password": "wrong"})
        assert response.status_code == 200
    blocked = client.post("/accounts/login/", {"username": viewer_user.username, "password": PASSWORD})
    assert blocked.status_code == 429
    assert b"Too many failed logins" in blocked.content and b"Try again in 15 minutes" in blocked.content
    assert int(blocked["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_token_endpoint_is_throttled_per_account_and_per_address(admin_user, operator_user, settings):
    settings.LOGIN_THROTTLE_FAILURES_PER_ADDRESS = 15
    api = Client()
    for _ in range(settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT):
        assert api.post("/api/auth/token/", {"username": admin_user.username, "password": "x"}).status_code == 400
    refused = api.post("/api/auth/token/", {"username": admin_user.username, "password": PASSWORD})
    assert refused.status_code == 429 and "Too many failed logins" in refused.json()["detail"]

    # Another account from the same address still works until the address's own budget is spent...
    assert api.post("/api/auth/token/", {"username": operator_user.username, "password": PASSWORD}).status_code == 200
    for _ in range(5):
        api.post("/api/auth/token/", {"username": f"guess-{_}", "password": "x"})
    # ...then every account from that address waits.
    assert api.post("/api/auth/token/", {"username": operator_user.username, "password": PASSWORD}).status_code == 429


@pytest.mark.django_db
def test_a_successful_login_clears_the_accounts_count(client, viewer_user):
    for _ in range(settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT - 1):
        client.post("/accounts/login/", {"username": viewer_user.username, "password": "wrong"})
    assert client.post("/accounts/login/", {"username": viewer_user.username, "password": PASSWORD}).status_code == 302
    client.logout()
    response = client.post("/accounts/login/", {"username": viewer_user.username, "password": "wrong"})
    assert response.status_code == 200  # counting starts again, not blocked


# --- bodies and parameters ---------------------------------------------------------------------------------------


def test_the_depth_scan_ignores_brackets_in_strings():
    assert not json_depth_exceeds('{"a": "[[[[[[[[[["}', 3)
    assert json_depth_exceeds("[[[[]]]]", 3)
    assert not json_depth_exceeds('["\\"[[[[", 1]', 1)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/servers/", "/api/registry/import/"])
def test_deeply_nested_json_is_a_400_even_anonymously(path, admin_api):
    body = "[" * 100_000 + "]" * 100_000
    anonymous = Client().post(path, body, content_type="application/json")
    assert anonymous.status_code in (400, 401, 403)
    authenticated = admin_api.post(path, body, content_type="application/json")
    assert authenticated.status_code == 400
    assert "nested deeper" in authenticated.json()["detail"]


@pytest.mark.django_db
def test_an_oversized_body_is_a_413(admin_api, settings):
    settings.API_MAX_BODY_BYTES = 10_000
    response = admin_api.post("/api/servers/", '{"name": "' + "x" * 20_000 + '"}', content_type="application/json")
    assert response.status_code == 413 and "larger than 10000 bytes" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/servers/", "/api/auth/token/", "/api/registry/import/"])
def test_a_body_over_the_upload_limit_answers_json_413_not_an_html_page(path, admin_user, settings):
    """Django's own limit (DATA_UPLOAD_MAX_MEMORY_SIZE) refuses the body when it is read: JSON, form or multipart."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    token = Token.objects.create(user=admin_user)
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    big = "x" * 20_000
    for response in (
        client.post(path, '{"name": "' + big + '"}', content_type="application/json"),
        client.post(path, f"name={big}", content_type="application/x-www-form-urlencoded"),
        client.post(path, {"name": big}),  # multipart
    ):
        assert response.status_code == 413, response.content[:200]
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"detail": "The request body is larger than 10000 bytes."}


@pytest.mark.django_db
def test_nan_is_not_json(admin_api):
    response = admin_api.post("/api/servers/", '{"priority": NaN}', content_type="application/json")
    assert response.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("limit=9223372036854775808", 200),
        ("limit=100000", 200),
        ("offset=9223372036854775808", 400),
        ("offset=-5", 400),
        ("offset=abc", 400),
        ("limit=abc", 200),
    ],
)
def test_absurd_pagination_is_capped_or_refused_never_a_500(viewer_api, query, expected):
    server_create(name="one", transport="http", url="http://127.0.0.1:9/mcp")
    response = viewer_api.get(f"/api/servers/?{query}")
    assert response.status_code == expected, response.content[:500]
    if expected == 400:
        assert "offset" in response.json()


# --- WebSocket origins -----------------------------------------------------------------------------------------


async def _connect(cookie: str, origin: bytes | None, host: bytes = b"127.0.0.1:8000", scheme: str = "ws") -> bool:
    headers = [(b"host", host), (b"cookie", cookie.encode())]
    if origin is not None:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    communicator.scope["scheme"] = scheme
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


def _cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


@pytest.mark.django_db(transaction=True)
async def test_websocket_origins_must_match_exactly(viewer_user, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["http://localhost:8000"]  # as set explicitly (the default trusts none)
    cookie = await sync_to_async(_cookie)(viewer_user)
    assert await _connect(cookie, b"http://127.0.0.1:8000")
    assert not await _connect(cookie, b"http://127.0.0.1:9999")  # another port of the same host
    assert not await _connect(cookie, b"https://127.0.0.1:8000")  # another scheme
    assert not await _connect(cookie, b"http://localhost:8001")  # another allowed host, not this page's origin
    assert await _connect(cookie, b"http://localhost:8000")  # listed in CSRF_TRUSTED_ORIGINS
    assert not await _connect(cookie, None)  # no Origin: not one of our pages
    assert not await _connect(cookie, b"http://evil.example:8000", host=b"evil.example:8000")  # not an allowed host
    assert await _connect(cookie, b"https://127.0.0.1:8443", host=b"127.0.0.1:8443", scheme="wss")
