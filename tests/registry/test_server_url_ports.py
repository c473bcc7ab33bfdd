"""A server URL's port is checked when the definition arrives (API, import, webhook URLs): a port the socket layer
cannot use is a 400 naming `url`, not a server that fails later with OverflowError on every connect."""

from __future__ import annotations

import pytest

from registry.models import Server
from registry.transfer import DOCUMENT_FORMAT, DOCUMENT_VERSION

pytestmark = pytest.mark.django_db

BAD_PORTS = ["99999", "65536", "0"]


@pytest.mark.parametrize("port", BAD_PORTS)
def test_it_refuses_a_url_whose_port_is_out_of_range(admin_api, port):
    response = admin_api.post(
        "/api/servers/",
        {"name": "bad-port", "transport": "http", "url": f"http://127.0.0.1:{port}/mcp"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "65535" in response.json()["url"][0]
    assert not Server.objects.filter(name="bad-port").exists()


def test_it_refuses_an_out_of_range_port_in_a_change_and_in_an_import(admin_api):
    created = admin_api.post(
        "/api/servers/", {"name": "edge-port", "transport": "sse", "url": "http://127.0.0.1:65535/sse"}, format="json"
    )
    assert created.status_code == 201, created.content
    changed = admin_api.patch("/api/servers/edge-port/", {"url": "http://127.0.0.1:99999/sse"}, format="json")
    assert changed.status_code == 400 and "url" in changed.json()
    assert Server.objects.get(name="edge-port").url == "http://127.0.0.1:65535/sse"

    document = {
        "format": DOCUMENT_FORMAT,
        "version": DOCUMENT_VERSION,
        "servers": [{"name": "imported", "transport": "http", "url": "http://127.0.0.1:99999/mcp"}],
    }
    imported = admin_api.post("/api/registry/import/", document, format="json")
    assert imported.status_code == 400
    assert any("'url'" in problem and "65535" in problem for problem in imported.json()["problems"])
    assert not Server.objects.filter(name="imported").exists()
