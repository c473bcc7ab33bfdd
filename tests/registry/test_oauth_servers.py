"""Servers behind OAuth, end to end over the real protocol.

`tests/mcp_servers/oauth_protected.py` runs an MCP server (SDK MCPServer with a token verifier) and its own
authorization server on 127.0.0.1, issuing access tokens that live 2 seconds. The fleet connects through the SDK's
OAuth client (mcp_client/oauth.py), with grants kept encrypted in the database (registry/oauth_store.py).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from django.test import Client

from exchange_fleet.launcher import free_port, stop_process, wait_for_port
from fleet import calls as fleet_calls
from health.models import Alert, AlertRule
from mcp_client.oauth import REFRESH_EARLY_SHARE
from registry.models import OAuthGrant, Server
from registry.oauth_crypto import decrypt
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PROTECTED = Path(__file__).parents[1] / "mcp_servers" / "oauth_protected.py"
TOKEN_SECONDS = 2
SERVICE_SECRET = "service-secret-for-the-oauth-tests"


class ProtectedServer:
    """The protected MCP server and its authorization server, as a child process."""

    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/mcp"
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(PROTECTED),
                "--port",
                str(self.port),
                "--token-seconds",
                str(TOKEN_SECONDS),
                "--client-secret",
                SERVICE_SECRET,
                *extra,
            ]
        )
        wait_for_port(self.port, self.process)

    def stats(self) -> dict:
        return httpx2.get(f"{self.base}/admin/stats").json()

    def revoke_refresh_tokens(self) -> None:
        httpx2.post(f"{self.base}/admin/revoke").raise_for_status()

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def protected() -> Iterator[ProtectedServer]:
    server = ProtectedServer()
    yield server
    server.stop()


def _create(api, name: str, url: str, oauth: dict) -> dict:
    answer = api.post(
        "/api/servers/?discover=false",
        {
            "name": name,
            "transport": "http",
            "url": url,
            "oauth": oauth,
            "metadata": {"health": {"interval_seconds": 1, "retries": 1, "recover_after": 1}},
        },
        format="json",
    )
    assert answer.status_code == 201, answer.content
    return answer.json()


def _status(name: str) -> tuple[str, str]:
    server = Server.objects.get(name=name)
    return server.status, server.status_reason


class TokenWatch:
    """Every token the database held for a server, decrypted (to look for them where they must not be)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: set[str] = set()

    def look(self) -> None:
        row = OAuthGrant.objects.filter(server__name=self.name).first()
        if row is None:
            return
        for column in (row.access_token, row.refresh_token):
            value = decrypt(column)
            if value:
                assert value not in column  # encrypted at rest: the column is not the token
                self.seen.add(value)


def _authorization_url(started) -> str:
    """Where "Authorize" sends the browser: the link its page follows (a page, not a redirect: see oauth_views)."""
    assert started.status_code == 200, started.content
    found = re.search(r'id="oauth-continue" href="([^"]+)"', started.content.decode())
    assert found, started.content
    return html.unescape(found.group(1))


def _authorize_in_the_browser(client: Client, name: str) -> str:
    """What a person does: Authorize, approve at the authorization server (which approves at once), come back."""
    started = client.post(f"/oauth/authorize/{name}/")
    approval = httpx2.get(_authorization_url(started), follow_redirects=False)
    assert approval.status_code == 302
    callback = approval.headers["location"]
    assert callback.startswith("http://testserver/oauth/callback/?")
    back = client.get(callback.removeprefix("http://testserver"))
    assert back.status_code == 302 and back["Location"] == f"/servers/{name}/", back.content
    return callback


def test_an_authorized_server_keeps_its_session_through_refreshes_and_asks_for_a_person_when_revoked(
    protected, live_fleet, operator_user, operator_api, admin_api, caplog
):
    caplog.set_level(logging.DEBUG)
    AlertRule.objects.create(name="server down", kind="down", severity="critical", group_wait_seconds=0.2)
    _create(operator_api, "guarded", protected.url, {"grant": "authorization_code", "registration": "dynamic"})
    live_fleet.request_reconcile()
    # No grant yet: the session cannot start, and the status says a person must act (not a generic "offline").
    wait_for(lambda: "authorization needed: no grant yet" in _status("guarded")[1], what="authorization needed")

    browser = Client()
    browser.force_login(operator_user)
    page = browser.get("/servers/guarded/")
    assert b'id="oauth-authorize"' in page.content
    _authorize_in_the_browser(browser, "guarded")
    watch = TokenWatch("guarded")
    watch.look()
    assert watch.seen, "the grant was stored"
    wait_for(lambda: _status("guarded")[0] == "online", timeout=30, what="online once authorized")

    server = Server.objects.get(name="guarded")
    sessions = fleet_calls.connection_status("guarded").sessions
    refreshes_before = protected.stats()["issued"]["refresh_token"]
    answers: list[object] = []

    def call_and_count_refreshes() -> bool:
        answer = fleet_calls.call_tool_sync(server, "echo", {"text": f"call {len(answers)}"}, timeout=10)
        answers.append(answer.result.structured_content)
        watch.look()
        return protected.stats()["issued"]["refresh_token"] - refreshes_before >= 3

    # Calls (one every 50 ms) until three refreshes happened, i.e. across three token lifetimes: every one answered.
    # A token is refreshed REFRESH_EARLY_SHARE of its lifetime early, and the first refresh may come at once (the
    # token was issued when the person approved): the three are at least two refresh intervals apart.
    took = wait_for(call_and_count_refreshes, timeout=30, what="three refreshes")
    refresh_interval = TOKEN_SECONDS * (1 - REFRESH_EARLY_SHARE)
    assert took >= 2 * refresh_interval and len(answers) >= 10, (took, len(answers))
    assert all(answer == {"result": f"call {index}"} for index, answer in enumerate(answers)), answers[:3]
    assert fleet_calls.connection_status("guarded").sessions == sessions, "a refresh dropped the session"
    assert len(watch.seen) >= 4

    # Nothing shows a token: the API, the page, the export (even with secrets), the logs.
    shown = [
        operator_api.get("/api/servers/guarded/").content.decode(),
        browser.get("/servers/guarded/").content.decode(),
        json.dumps(admin_api.get("/api/registry/export/?include_secrets=true").json()),
        *(record.getMessage() for record in caplog.records),
        *(str(record.exc_text or "") for record in caplog.records),
    ]
    for token in watch.seen:
        assert not any(token in text for text in shown)
    detail = operator_api.get("/api/servers/guarded/").json()
    assert detail["oauth"]["grant_state"]["authorized"] is True

    # The server forgets the access tokens it issued: the refused token is refreshed and the call answered.
    httpx2.post(f"{protected.base}/admin/forget-access").raise_for_status()
    answer = fleet_calls.call_tool_sync(server, "echo", {"text": "after forgetting"}, timeout=10)
    assert answer.result.structured_content == {"result": "after forgetting"}
    assert fleet_calls.connection_status("guarded").sessions == sessions

    # The authorization server revokes the refresh token: the next refresh fails and a person is needed again.
    protected.revoke_refresh_tokens()
    wait_for(
        lambda: "authorization needed: the refresh token was refused" in _status("guarded")[1],
        timeout=30,
        what=f"authorization needed after the revocation (status: {_status('guarded')})",
    )
    wait_for(lambda: Alert.objects.filter(state="firing").exists(), timeout=20, what="the server-down alert")
    alert = Alert.objects.get(state="firing")
    assert "authorization needed" in alert.cause, alert.cause
    assert protected.stats()["refused"]["refresh_token"] >= 1
    grant = operator_api.get("/api/servers/guarded/").json()["oauth"]["grant_state"]
    assert grant["authorized"] is False and "refresh token was refused" in grant["needs_authorization"]


def test_client_credentials_end_to_end(protected, live_fleet, admin_api, operator_api, caplog):
    caplog.set_level(logging.DEBUG)
    created = _create(
        admin_api,
        "service",
        protected.url,
        {"grant": "client_credentials", "client_id": "svc", "client_secret": SERVICE_SECRET},
    )
    assert created["oauth"]["client_secret_set"] is True and "client_secret" not in created["oauth"]
    stored = Server.objects.get(name="service")
    assert SERVICE_SECRET not in stored.oauth_client_secret and decrypt(stored.oauth_client_secret) == SERVICE_SECRET
    live_fleet.request_reconcile()
    wait_for(lambda: _status("service")[0] == "online", timeout=30, what="online with client credentials")
    sessions = fleet_calls.connection_status("service").sessions
    watch = TokenWatch("service")
    issued_before = protected.stats()["issued"]["client_credentials"]
    counts: list[int] = []

    def call_and_count_tokens() -> bool:
        counts.append(fleet_calls.call_tool_sync(stored, "counter", {}, timeout=10).result.structured_content["result"])
        watch.look()
        return protected.stats()["issued"]["client_credentials"] - issued_before >= 3

    # New tokens as the old ones run out (no refresh token in this grant), on the same session.
    # Fetched REFRESH_EARLY_SHARE of a lifetime early, the first possibly at once: two intervals apart at least.
    took = wait_for(call_and_count_tokens, timeout=30, what="three new client-credentials tokens")
    assert took >= 2 * TOKEN_SECONDS * (1 - REFRESH_EARLY_SHARE) and len(counts) >= 10, (took, len(counts))
    assert counts == sorted(counts)
    assert fleet_calls.connection_status("service").sessions == sessions
    # An operator may not change a server holding a client secret; the secret never comes back.
    refused = operator_api.patch("/api/servers/service/", {"priority": 5}, format="json")
    assert refused.status_code == 403
    export = admin_api.get("/api/registry/export/").json()
    assert SERVICE_SECRET not in json.dumps(export)
    with_secrets = admin_api.get("/api/registry/export/?include_secrets=true").json()
    entry = next(entry for entry in with_secrets["servers"] if entry["name"] == "service")
    assert entry["oauth"]["client_secret"] == SERVICE_SECRET
    for token in watch.seen | {SERVICE_SECRET}:
        assert not any(token in record.getMessage() for record in caplog.records)


def test_the_callback_refuses_a_state_this_session_did_not_start(operator_user):
    browser = Client()
    browser.force_login(operator_user)
    answer = browser.get("/oauth/callback/?code=stolen&state=not-ours")
    assert answer.status_code == 400
    assert b"state mismatch" in answer.content and b"stolen" not in answer.content


def test_a_callback_with_another_persons_state_is_refused(protected, live_fleet, operator_user, operator_api):
    _create(operator_api, "guarded", protected.url, {"grant": "authorization_code"})
    alice = Client()
    alice.force_login(operator_user)
    started = alice.post("/oauth/authorize/guarded/")
    callback = httpx2.get(_authorization_url(started), follow_redirects=False).headers["location"]
    from django.contrib.auth.models import User

    mallory = Client()
    mallory.force_login(User.objects.create_user("mallory", password="x" * 12, is_staff=True))
    assert mallory.get(callback.removeprefix("http://testserver")).status_code == 400
    assert not OAuthGrant.objects.filter(server__name="guarded").exclude(access_token="").exists()
    # Alice's own callback still works: the refusal did not spend her authorization.
    assert alice.get(callback.removeprefix("http://testserver")).status_code == 302
    assert OAuthGrant.objects.filter(server__name="guarded").exclude(access_token="").exists()


@pytest.mark.parametrize(
    ("oauth", "field"),
    [
        ({"grant": "implicit"}, "grant"),
        ({"grant": "client_credentials", "client_id": "svc"}, "oauth.client_secret"),
        ({"grant": "client_credentials", "registration": "dynamic", "client_secret": "x"}, "oauth.registration"),
        ({"registration": "metadata_document"}, "oauth.client_metadata_url"),
        (
            {"registration": "metadata_document", "client_metadata_url": "http://a.example/doc"},
            "oauth.client_metadata_url",
        ),
        ({"issuer": "http://169.254.169.254/"}, "oauth.issuer"),
        ({"scope": "a  b"}, "oauth.scope"),
        ({"surprise": 1}, "surprise"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "oauth.token_endpoint_auth_method"),
        (
            {
                "grant": "client_credentials",
                "client_id": "svc",
                "client_secret": "not-a-pem-key",
                "token_endpoint_auth_method": "private_key_jwt",
            },
            "oauth.client_secret",
        ),
    ],
)
def test_a_bad_oauth_definition_is_refused_naming_the_field(operator_api, oauth, field):
    answer = operator_api.post(
        "/api/servers/?discover=false",
        {"name": "bad-oauth", "transport": "http", "url": "http://127.0.0.1:9/mcp", "oauth": oauth},
        format="json",
    )
    assert answer.status_code == 400, answer.content
    assert field in json.dumps(answer.json()), answer.json()
    assert "not-a-pem-key" not in answer.content.decode()
    assert not Server.objects.filter(name="bad-oauth").exists()


@pytest.mark.parametrize(
    "flags",
    [
        ["--oauth", "client_credentials", "--client-id", "svc", "--client-secret", SERVICE_SECRET],
        ["--oauth", "authorization_code"],
    ],
    ids=["client-credentials", "authorization-code"],
)
def test_the_probe_runs_the_flows_headless(protected, flags, tmp_path):
    """`manage.py mcp_probe --oauth ...`: discovery, registration, approval without a person, the call answered; no
    secret in what it prints."""
    call = ["--call", "echo", "--arguments", '{"text": "hi"}', "--json", protected.url]
    done = subprocess.run(
        [sys.executable, "manage.py", "mcp_probe", *flags, *call],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ORCHESTRATOR_VAR_DIR": str(tmp_path)},
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["call"]["structured_content"] == {"result": "hi"}
    assert SERVICE_SECRET not in done.stdout + done.stderr


def test_test_connection_runs_the_oauth_flow_the_fleet_would(protected, live_fleet, admin_api):
    """ "Test connection" with an OAuth part: client credentials really connect (nothing stored); an authorization code
    without a grant says a person must authorize, not "check the server's headers"."""
    service = {"grant": "client_credentials", "client_id": "svc", "client_secret": SERVICE_SECRET}
    body = {"name": "service", "transport": "http", "url": protected.url, "oauth": service}
    answer = admin_api.post("/api/servers/test-connection/", body, format="json").json()
    assert answer["ok"] is True and "echo" in answer["tool_names"], answer
    assert not OAuthGrant.objects.exists() and not Server.objects.exists()
    wrong = {**body, "oauth": {**service, "client_secret": "not-the-secret-at-all"}}
    answer = admin_api.post("/api/servers/test-connection/", wrong, format="json").json()
    assert answer["ok"] is False and "not-the-secret-at-all" not in json.dumps(answer)
    assert "authorization failed" in answer["error"] and "headers" not in answer["error"], answer
    person = {**body, "oauth": {"grant": "authorization_code"}}
    answer = admin_api.post("/api/servers/test-connection/", person, format="json").json()
    assert answer["ok"] is False and "authorization needed" in answer["error"], answer


def test_an_authorization_server_outside_the_outbound_policy_is_never_contacted(start_fleet, operator_api, settings):
    """The server's metadata names an authorization server at 127.0.0.2, outside the allowed networks: the session
    stops at the policy (no request leaves) and says so; the MCP server itself (127.0.0.1) is allowed."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    live_fleet = start_fleet()  # its policy is read when it starts
    elsewhere = ProtectedServer("--issuer-host", "127.0.0.2")
    try:
        service = {"grant": "client_credentials", "client_id": "svc", "client_secret": SERVICE_SECRET}
        _create(operator_api, "elsewhere", elsewhere.url, service)
        live_fleet.request_reconcile()
        wait_for(lambda: "127.0.0.2" in _status("elsewhere")[1], timeout=30, what="refused by the policy")
        status, reason = _status("elsewhere")
        assert status == "offline" and "refused" in reason, reason
        assert elsewhere.stats()["issued"]["client_credentials"] == 0
    finally:
        elsewhere.stop()
