"""`/api/auth/my-token/`: the caller's own API token. Made (or replaced) by POST, the only answer that shows the key;
read by GET, which never does; revoked by DELETE, after which the old key is refused at once, on the sync API and on
the serving path's cached callers alike. Every role may; nobody anonymous; a session needs its CSRF token."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

MY_TOKEN = "/api/auth/my-token/"
# An AsyncAPIView of the serving path: its callers come from the per-process cache (orchestrator_site/async_api.py).
CACHED_CALL = "/api/servers/no-such-server/call/"


def by_token(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {key}")


def cached_call_status(key: str) -> int:
    response = by_token(key).post(CACHED_CALL, {"tool": "get_quote"}, content_type="application/json")
    return response.status_code


@pytest.mark.parametrize("persona", ["viewer_api", "operator_api", "admin_api"])
def test_every_role_makes_a_token_that_is_shown_once_and_works(request, persona):
    api: APIClient = request.getfixturevalue(persona)
    assert api.get(MY_TOKEN).json() == {"exists": False, "created": None}

    made = api.post(MY_TOKEN)
    assert made.status_code == 201
    body = made.json()
    assert set(body) == {"exists", "created", "key"} and body["exists"] is True
    assert len(body["key"]) == 40 and made.headers["Cache-Control"] == "no-store"

    shown = api.get(MY_TOKEN)
    assert shown.status_code == 200
    assert shown.json() == {"exists": True, "created": body["created"]}
    assert body["key"] not in shown.content.decode()

    # The key is the user's: the REST API answers it, and it reads its own status (a viewer's token lists and reads).
    assert by_token(body["key"]).get("/api/servers/").status_code == 200
    assert by_token(body["key"]).get(MY_TOKEN).json()["exists"] is True


def test_post_replaces_the_token_and_the_old_key_stops_at_once(operator_api, operator_user):
    old = operator_api.post(MY_TOKEN).json()["key"]
    assert cached_call_status(old) == 404  # known to the cache now: the caller is real, the server is not
    new = operator_api.post(MY_TOKEN).json()["key"]
    assert new != old
    assert list(Token.objects.filter(user=operator_user).values_list("key", flat=True)) == [new]
    assert by_token(old).get("/api/servers/").status_code == 401
    assert cached_call_status(old) == 401
    assert by_token(new).get("/api/servers/").status_code == 200
    assert cached_call_status(new) == 404


@pytest.mark.parametrize("persona", ["viewer_api", "operator_api"])
def test_delete_revokes_and_the_key_is_refused_at_once(request, persona):
    api: APIClient = request.getfixturevalue(persona)
    key = api.post(MY_TOKEN).json()["key"]
    # Cached by the serving path (a viewer is known too: refused there for its role, not its key).
    assert cached_call_status(key) == (403 if persona == "viewer_api" else 404)

    response = api.delete(MY_TOKEN)
    assert response.status_code == 204 and response.content == b""
    assert api.get(MY_TOKEN).json() == {"exists": False, "created": None}
    refused = by_token(key).get("/api/servers/")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Token"
    assert cached_call_status(key) == 401
    assert not Token.objects.filter(key=key).exists()


def test_delete_without_a_token_changes_nothing(viewer_api, operator_user):
    other = Token.objects.create(user=operator_user)  # someone else's token is not touched
    assert viewer_api.delete(MY_TOKEN).status_code == 204
    assert Token.objects.filter(pk=other.pk).exists()


def test_a_token_caller_may_replace_its_own_token(viewer_user):
    key = Token.objects.create(user=viewer_user).key
    made = by_token(key).post(MY_TOKEN)
    assert made.status_code == 201 and made.json()["key"] != key
    assert by_token(key).get(MY_TOKEN).status_code == 401
    assert by_token(made.json()["key"]).delete(MY_TOKEN).status_code == 204
    assert not Token.objects.filter(user=viewer_user).exists()


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_anonymous_callers_are_refused_with_401(anonymous_api, method):
    response = getattr(anonymous_api, method)(MY_TOKEN)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Token"
    assert not Token.objects.exists()


def test_a_bad_key_is_refused_with_401(db):
    assert by_token("0" * 40).get(MY_TOKEN).status_code == 401
    assert by_token("0" * 40).post(MY_TOKEN).status_code == 401
    assert not Token.objects.exists()


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_a_user_without_a_role_is_refused_with_403(outsider_api, method):
    assert getattr(outsider_api, method)(MY_TOKEN).status_code == 403
    assert not Token.objects.exists()


def test_a_session_needs_the_csrf_token_to_make_or_revoke(viewer_user: User):
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username=viewer_user.username, password=PASSWORD)
    assert browser.get(MY_TOKEN).status_code == 200  # reading needs none

    for method in ("post", "delete"):
        refused = getattr(browser, method)(MY_TOKEN)
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert not Token.objects.exists()

    page = browser.get("/mcp-endpoint/")  # the page sets the CSRF cookie its script sends back
    assert page.status_code == 200
    csrf = browser.cookies["csrftoken"].value
    made = browser.post(MY_TOKEN, HTTP_X_CSRFTOKEN=csrf)
    assert made.status_code == 201 and Token.objects.get(user=viewer_user).key == made.json()["key"]
    assert browser.delete(MY_TOKEN, HTTP_X_CSRFTOKEN=csrf).status_code == 204
    assert not Token.objects.exists()


def test_the_schema_declares_the_three_operations(viewer_api):
    schema = viewer_api.get("/api/schema/?format=json").json()
    operations = schema["paths"]["/api/auth/my-token/"]
    assert set(operations) == {"get", "post", "delete"}
    components = schema["components"]["schemas"]
    status_ref = operations["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert set(components[status_ref.rsplit("/", 1)[1]]["properties"]) == {"exists", "created"}
    made_ref = operations["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    assert set(components[made_ref.rsplit("/", 1)[1]]["properties"]) == {"exists", "created", "key"}
    assert "requestBody" not in operations["post"] and "204" in operations["delete"]["responses"]
