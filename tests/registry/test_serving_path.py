"""The serving path (`POST /api/servers/<name>/call/` and `/read/` on the event loop): who is calling and what is
called come from per-process caches, which every change that could revoke, demote or disable clears at once."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from registry.models import CapabilitySnapshot, Server
from registry.permissions import OPERATOR_GROUP
from registry.services import server_update
from tests.conftest import PASSWORD
from tests.exchanges import discovered_exchange

pytestmark = pytest.mark.django_db(transaction=True)

QUOTE = {"tool": "get_quote", "arguments": {"symbol": "BTC-USD"}}
CALL = "/api/servers/exchange-alpha/call/"


@pytest.fixture
def exchange() -> Server:
    return discovered_exchange()


@pytest.fixture
def token(operator_user: User) -> Token:
    return Token.objects.create(user=operator_user)


def call(token: Token, body: dict | None = None, path: str = CALL) -> tuple[int, dict, dict]:
    response = Client().post(
        path,
        body if body is not None else QUOTE,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token.key}",
    )
    return response.status_code, response.json(), response.headers


def test_a_known_caller_calling_a_known_server_costs_no_database_query(exchange, token):
    assert call(token)[0] == 200  # learns the token and the server
    with CaptureQueriesContext(connection) as queries:
        code, body, _ = call(token)
    assert code == 200 and body["result"]["structured_content"]["symbol"] == "BTC-USD"
    assert body["outcome"]["caller"] == token.user.username
    assert [query["sql"] for query in queries.captured_queries] == []


def test_a_deleted_token_is_refused_at_once(exchange, token):
    assert call(token)[0] == 200
    Token.objects.filter(pk=token.pk).delete()  # a queryset delete still sends post_delete per row
    code, body, headers = call(token)
    assert code == 401 and body == {"detail": "Invalid token."} and headers["WWW-Authenticate"] == "Token"


def test_a_caller_who_loses_the_operator_role_is_refused_at_once(exchange, token):
    assert call(token)[0] == 200
    token.user.groups.remove(Group.objects.get(name=OPERATOR_GROUP))
    code, body, _ = call(token)
    assert code == 403 and "operator" in body["detail"]


def test_a_deactivated_user_is_refused_at_once(exchange, token):
    assert call(token)[0] == 200
    token.user.is_active = False
    token.user.save()
    assert call(token)[0] == 401


def test_a_server_disabled_or_deleted_is_refused_at_once(exchange, token):
    assert call(token)[0] == 200
    server_update(server=exchange, by="test", enabled=False)
    code, body, _ = call(token)
    assert code == 400 and "enabled" in body
    Server.objects.get(name="exchange-alpha").delete()
    assert call(token)[0] == 404


def test_a_new_capability_snapshot_is_used_at_once(exchange, token):
    assert call(token)[0] == 200  # the server and its schemas are now known to the cache
    snapshot = CapabilitySnapshot.objects.latest_for(exchange)
    for tool in snapshot.tools:
        if tool["name"] == "get_quote":  # a newer discovery says the symbol is a number now
            schema = tool.get("inputSchema") or tool["input_schema"]
            schema["properties"]["symbol"] = {"type": "integer"}
    snapshot.save()
    code, body, _ = call(token)
    assert code == 400 and "symbol" in body["arguments"]


def test_no_credentials_answer_401_with_the_scheme_and_a_bad_header_401(exchange):
    response = Client().post(CALL, QUOTE, content_type="application/json")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Token"
    response = Client().post(CALL, QUOTE, content_type="application/json", HTTP_AUTHORIZATION="Token a b")
    assert response.status_code == 401 and response.json() == {"detail": "Invalid token header."}


def test_a_session_caller_needs_the_csrf_token_and_a_token_caller_does_not(exchange, operator_user, token):
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username=operator_user.username, password=PASSWORD)
    response = browser.post(CALL, QUOTE, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    browser.get("/")  # the dashboard sets the CSRF cookie, as a page with the call form does
    csrf = browser.cookies["csrftoken"].value
    response = browser.post(CALL, QUOTE, content_type="application/json", HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 200, response.content
    assert call(token)[0] == 200


def test_the_per_user_rate_answers_429_with_retry_after(exchange, token, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "2/min", "anon": "9/min"}}
    assert [call(token)[0] for _ in range(2)] == [200, 200]
    code, body, headers = call(token)
    assert code == 429 and "throttled" in body["detail"].lower() and 1 <= int(headers["Retry-After"]) <= 60


def test_bad_bodies_answer_4xx_naming_what_is_wrong(exchange, token, settings):
    code, body, _ = call(token, {"tool": "get_quote", "arguments": {"symbol": 5}})
    assert code == 400 and "arguments" in body
    code, body, _ = call(token, {"arguments": {}})
    assert code == 400 and "tool" in body
    response = Client().post(CALL, "tool=x", content_type="text/plain", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 415 and "detail" in response.json()
    response = Client().post(
        CALL, '{"tool": ' + "[" * 5_000, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token.key}"
    )
    assert response.status_code == 400 and "deeper" in response.json()["detail"]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    response = Client().post(
        CALL, {"tool": "x" * 2_000}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token.key}"
    )
    assert response.status_code == 413 and "larger than 1000 bytes" in response.json()["detail"]
    response = Client().get(CALL, HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
