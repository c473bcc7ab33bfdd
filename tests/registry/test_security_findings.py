"""The security findings against the registry, each reproduced through the API and shown fixed.

Every listener here is on 127.0.0.1; refused addresses are refused before any packet is sent.
"""

from __future__ import annotations

import http.server
import json
import logging
import sys
import threading
from collections.abc import Iterator

import pytest
from django.conf import settings

from exchange_fleet.launcher import free_port
from mcp_client.redaction import Redactor
from registry.models import Server, ServerStatus
from registry.services import server_create
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "s3cr3t-token-do-not-leak"


class Listener:
    """A plain HTTP listener on 127.0.0.1 that records every request's headers and answers `status` with `body`."""

    def __init__(self, status: int = 401, body: bytes = b"") -> None:
        self.requests: list[dict[str, str]] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                listener.requests.append({key.lower(): value for key, value in self.headers.items()})
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                payload = listener.body.replace(b"{auth}", (self.headers.get("authorization") or "").encode())
                self.send_response(listener.status)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.status, self.body = status, body
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/mcp"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    made: list[Listener] = []
    yield made
    for listener in made:
        listener.close()


def test_an_operator_cannot_point_a_server_with_secrets_elsewhere(admin_api, operator_api, listeners, live_fleet):
    theirs = Listener()
    listeners.append(theirs)
    admin_api.post(
        "/api/servers/?discover=false",
        {"name": "vault", "transport": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": SECRET}},
        format="json",
    )
    for method in ("patch", "put"):
        response = getattr(operator_api, method)(
            "/api/servers/vault/", {"name": "vault", "transport": "http", "url": theirs.url}, format="json"
        )
        assert response.status_code == 403, response.json()
        assert "holds secrets (headers)" in response.json()["detail"] and "only admins" in response.json()["detail"]
    assert Server.objects.get(name="vault").url == "http://127.0.0.1:9/mcp"

    # Even an admin must give the headers again (or drop them) to change where the server points.
    response = admin_api.patch("/api/servers/vault/", {"url": theirs.url}, format="json")
    assert response.status_code == 400 and "headers" in response.json()
    assert "give the headers again" in response.json()["headers"][0]
    response = admin_api.patch("/api/servers/vault/", {"url": theirs.url, "headers": {}}, format="json")
    assert response.status_code == 200
    assert Server.objects.get(name="vault").headers == {}

    # The fleet now talks to the new URL, without the old endpoint's credentials.
    wait_for(lambda: theirs.requests)
    wait_for(lambda: Server.objects.get(name="vault").status == ServerStatus.OFFLINE)
    assert all(SECRET not in json.dumps(request) for request in theirs.requests)
    assert all("authorization" not in request for request in theirs.requests)


# 2. One bad definition stopped the whole fleet loop.


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"headers": {"": "x"}}, "headers"),
        ({"headers": {"Host": "internal.example"}}, "headers"),
        ({"headers": {"Content-Length": "0"}}, "headers"),
        ({"headers": {"X-Token": "a\r\nInjected: yes"}}, "headers"),
        ({"headers": {"X-Token": "caf\u00e9"}}, "headers"),
        ({"headers": {"X Token": "x"}}, "headers"),
        ({"transport": "stdio", "url": "", "command": "python", "env": {"": "x"}}, "env"),
        ({"transport": "stdio", "url": "", "command": "python", "env": {"A=B": "x"}}, "env"),
        ({"transport": "stdio", "url": "", "command": "python", "env": {"A": "x\x00y"}}, "env"),
        ({"request_timeout_seconds": -1}, "request_timeout_seconds"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_definitions_the_fleet_cannot_use_are_refused_when_they_arrive(admin_api, definition, field):
    body = {"name": "bad", "transport": "http", "url": "http://127.0.0.1:9/mcp", **definition}
    response = admin_api.post("/api/servers/?discover=false", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()
    assert not Server.objects.exists()


def test_a_definition_that_still_fails_marks_only_its_own_server(admin_api, live_fleet):
    # A row written before these rules existed (or by hand): the supervisor keeps serving the others.
    Server.objects.create(name="legacy", transport="http", url="http://127.0.0.1:9/mcp", headers={"": "x"})
    server_create(
        name="exchange-alpha",
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", "alpha"],
        cwd=str(settings.BASE_DIR),
    )
    live_fleet.request_reconcile()
    wait_for(lambda: Server.objects.get(name="exchange-alpha").status == ServerStatus.ONLINE)
    legacy = Server.objects.get(name="legacy")
    assert legacy.status == ServerStatus.OFFLINE
    assert legacy.status_reason.startswith("needs attention: its definition cannot be used")
    assert live_fleet.loop_errors == 0


def test_an_import_normalises_names_before_looking_servers_up(admin_api):
    server_create(name="alpha", transport="http", url="http://127.0.0.1:9/mcp", headers={"Authorization": SECRET})
    document = {
        "format": "mcp-orchestrator/registry",
        "version": 1,
        "servers": [{"name": " alpha", "transport": "stdio", "command": "python", "url": ""}],
    }
    response = admin_api.post("/api/registry/import/", document, format="json")
    assert response.status_code == 400, response.json()
    problems = " ".join(response.json()["problems"])
    # Checked against the stored "alpha": its headers cannot ride along to a command.
    assert "servers[0] ('alpha')" in problems and "'headers'" in problems
    assert Server.objects.get(name="alpha").transport == "http"


def test_an_import_with_version_true_is_refused(admin_api):
    response = admin_api.post(
        "/api/registry/import/", {"format": "mcp-orchestrator/registry", "version": True, "servers": []}, format="json"
    )
    assert response.status_code == 400 and "version" in response.json()["detail"]


def test_a_huge_name_gets_a_short_error(admin_api):
    name = "n" * 200_000
    response = admin_api.post(
        "/api/servers/?discover=false", {"name": name, "transport": "telepathy", "url": "x"}, format="json"
    )
    assert response.status_code == 400 and len(response.content) < 2_000
    document = {"format": "mcp-orchestrator/registry", "version": 1, "servers": [{"name": name, name: 1}] * 3}
    response = admin_api.post("/api/registry/import/", document, format="json")
    assert response.status_code == 400 and len(response.content) < 10_000


# 3. Secret values came back in error text that viewers read.


def test_secrets_and_reply_bodies_never_reach_viewers_or_the_log(
    admin_api, viewer_api, client, viewer_user, listeners, live_fleet, caplog
):
    # A hostile server: it answers every request with an HTML page that echoes the Authorization header back.
    hostile = Listener(status=500, body=b"<html><body>internal secret page, your token: {auth}</body></html>")
    listeners.append(hostile)
    caplog.set_level(logging.DEBUG)
    admin_api.post(
        "/api/servers/?discover=false",
        {"name": "hostile", "transport": "http", "url": hostile.url, "headers": {"Authorization": f"Bearer {SECRET}"}},
        format="json",
    )
    live_fleet.request_reconcile()
    wait_for(lambda: Server.objects.get(name="hostile").status == ServerStatus.OFFLINE)
    wait_for(lambda: hostile.requests and SECRET in json.dumps(hostile.requests))  # it did get (and echo) the token
    server = Server.objects.get(name="hostile")
    assert server.status_reason and server.last_error
    client.force_login(viewer_user)
    seen = [
        server.status_reason,
        server.last_error,
        viewer_api.get("/api/servers/hostile/").content.decode(),
        viewer_api.get("/api/servers/").content.decode(),
        client.get("/servers/hostile/").content.decode(),
        client.get("/").content.decode(),
        admin_api.post("/api/servers/hostile/discover/").content.decode(),
        caplog.text,
    ]
    for text in seen:
        assert SECRET not in text
        assert "internal secret page" not in text


def test_the_redactor_scrubs_what_an_http_stack_prints():
    redact = Redactor([f"Bearer {SECRET}", "env-value-42"])
    text = f"LocalProtocolError: Illegal header value b'Bearer {SECRET}'; child said env-value-42"
    scrubbed = redact(text)
    assert SECRET not in scrubbed and "env-value-42" not in scrubbed
    pydantic_text = "1 validation error [type=json_invalid, input_value='<html>secret page</html>', input_type=str]"
    assert "secret page" not in redact(pydantic_text)


# 4. Server-side requests to internal addresses.


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/mcp",
        "http://172.16.0.1/mcp",
        "http://192.168.1.10/mcp",
        "http://0.0.0.0:8000/mcp",
        "http://[fd00::1]/mcp",
        "http://[fe80::1]/mcp",
        "http://224.0.0.1/mcp",
        "http://8.8.8.8/mcp",
    ],
)
def test_urls_outside_the_outbound_policy_are_refused(operator_api, url):
    response = operator_api.post(
        "/api/servers/?discover=false", {"name": "probe", "transport": "http", "url": url}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "OUTBOUND_ALLOWED_NETWORKS" in response.json()["url"][0]
    assert not Server.objects.exists()


def test_a_hostname_resolving_into_a_refused_range_is_refused(operator_api, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["::1/128"]  # loopback IPv6 only: localhost (127.0.0.1 here) is refused
    for url in ("http://localhost:8001/mcp", "http://[::ffff:127.0.0.1]/mcp"):
        response = operator_api.post(
            "/api/servers/?discover=false", {"name": "probe", "transport": "http", "url": url}, format="json"
        )
        assert response.status_code == 400, response.json()
        assert "OUTBOUND_ALLOWED_NETWORKS" in response.json()["url"][0]


def test_a_stored_url_refused_by_a_changed_policy_is_refused_at_connect_time(operator_api, settings, listeners):
    listener = Listener(status=200)
    listeners.append(listener)
    server_create(name="drifted", transport="http", url=listener.url)
    settings.OUTBOUND_ALLOWED_NETWORKS = ["::1/128"]
    from fleet.application import stop_running

    stop_running()  # the next fleet runtime takes the new policy
    response = operator_api.post("/api/servers/drifted/discover/")
    assert response.status_code == 502
    assert "OUTBOUND_ALLOWED_NETWORKS" in response.json()["error"]
    assert listener.requests == []  # refused before any packet
