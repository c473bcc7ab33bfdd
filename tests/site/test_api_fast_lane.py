"""The ASGI fast lane: token-authenticated serving-path requests reach their view past Django's middleware, with the
headers that middleware would have added; everything else still goes through Django."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from rest_framework.authtoken.models import Token

from orchestrator_site import api_fast_lane
from orchestrator_site.asgi import application
from tests.exchanges import discovered_exchange

pytestmark = pytest.mark.django_db(transaction=True)

QUOTE = json.dumps({"tool": "get_quote", "arguments": {"symbol": "BTC-USD"}}).encode()
CALL = "/api/servers/exchange-alpha/call/"


async def post(path: str, body: bytes, *headers: tuple[bytes, bytes]) -> tuple[int, dict[str, str], dict]:
    base = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    answer = await HttpCommunicator(application, "POST", path, body=body, headers=base + list(headers)).get_response(
        timeout=20
    )
    found = {name.decode().lower(): value.decode() for name, value in answer["headers"]}
    return answer["status"], found, json.loads(answer["body"] or b"null")


@pytest.fixture
def spy(monkeypatch):
    """Which requests the fast lane served itself."""
    served: list[str] = []
    original = api_fast_lane._fast_view

    def recording(scope):
        found = original(scope)
        if found is not None:
            served.append(scope["path"])
        return found

    monkeypatch.setattr(api_fast_lane, "_fast_view", recording)
    return served


async def test_a_token_call_is_served_by_the_view_with_the_middlewares_headers(operator_user, spy):
    await sync_to_async(discovered_exchange)()
    token = await sync_to_async(Token.objects.create)(user=operator_user)
    code, headers, body = await post(CALL, QUOTE, (b"authorization", f"Token {token.key}".encode()))
    assert code == 200, body
    assert body["result"]["structured_content"]["symbol"] == "BTC-USD"
    assert body["outcome"]["caller"] == operator_user.username
    assert spy == [CALL]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"


async def test_its_refusals_are_the_views_a_bad_host_and_an_oversized_body(operator_user, viewer_user, settings, spy):
    token = await sync_to_async(Token.objects.create)(user=viewer_user)
    auth = (b"authorization", f"Token {token.key}".encode())
    code, _, body = await post(CALL, QUOTE, auth)
    assert code == 403 and "operator" in body["detail"]
    code, headers, body = await post(CALL, QUOTE, (b"authorization", b"Token not-a-token"))
    assert code == 401 and headers["www-authenticate"] == "Token"
    code, _, body = await post(CALL, QUOTE, auth, (b"host", b"evil.example"))
    assert code == 400 and "host" in body["detail"]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    code, _, body = await post(CALL, b'{"tool": "' + b"x" * 500 + b'"}', auth)
    assert code == 413 and "larger than 100 bytes" in body["detail"]
    assert len(spy) == 4


async def test_requests_without_a_token_or_to_other_views_go_through_django(operator_user, spy):
    token = await sync_to_async(Token.objects.create)(user=operator_user)
    code, headers, _ = await post(CALL, QUOTE)
    assert code == 401 and "content-security-policy" in headers
    code, _, _ = await post("/api/servers/", b"{}", (b"authorization", f"Token {token.key}".encode()))
    assert code == 400  # the registry's DRF view, through Django: a definition without a name
    assert spy == []
