"""Export and import of the registry: versioned, validated in full, all or nothing, idempotent, secrets on request."""

from __future__ import annotations

import copy
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from registry.models import Server
from registry.services import server_create
from registry.transfer import DOCUMENT_FORMAT, DOCUMENT_VERSION

pytestmark = pytest.mark.django_db

SECRET_TOKEN = "sk-live-very-secret-4242"


@pytest.fixture
def two_servers() -> list[Server]:
    return [
        server_create(
            name="quotes-http",
            transport="http",
            url="http://127.0.0.1:9/mcp",
            headers={"Authorization": f"Bearer {SECRET_TOKEN}"},
            server_type="exchange",
            tags=["prod", "quotes"],
            priority=7,
            metadata={"taker_fee": 0.001},
        ),
        server_create(
            name="clock",
            transport="stdio",
            command="mcp-server-time",
            args=["--local-timezone", "UTC"],
            env={"API_KEY": SECRET_TOKEN},
            server_type="utility",
        ),
    ]


def _document(*servers: dict) -> dict:
    return {"format": DOCUMENT_FORMAT, "version": DOCUMENT_VERSION, "servers": list(servers)}


VALID_ENTRY = {"name": "new-one", "transport": "http", "url": "http://127.0.0.1:7001/mcp", "tags": ["a"]}


def test_export_leaves_secrets_out_unless_asked(operator_api, two_servers):
    response = operator_api.get("/api/registry/export/")
    assert response.status_code == 200
    body = json.dumps(response.json())
    assert SECRET_TOKEN not in body
    clock = next(entry for entry in response.json()["servers"] if entry["name"] == "clock")
    assert clock["env_keys"] == ["API_KEY"]
    assert "env" not in clock
    assert response.json()["format"] == DOCUMENT_FORMAT and response.json()["version"] == DOCUMENT_VERSION


def test_only_admins_export_secrets(operator_api, admin_api, two_servers):
    assert operator_api.get("/api/registry/export/?include_secrets=true").status_code == 403
    response = admin_api.get("/api/registry/export/?include_secrets=true")
    assert response.status_code == 200
    clock = next(entry for entry in response.json()["servers"] if entry["name"] == "clock")
    assert clock["env"] == {"API_KEY": SECRET_TOKEN}
    assert response.json()["includes_secrets"] is True


def test_viewers_cannot_export_and_operators_cannot_import(viewer_api, operator_api):
    assert viewer_api.get("/api/registry/export/").status_code == 403
    response = operator_api.post("/api/registry/import/", _document(VALID_ENTRY), format="json")
    assert response.status_code == 403
    assert not Server.objects.exists()


def test_a_round_trip_restores_the_registry_and_a_second_import_changes_nothing(admin_api, two_servers):
    exported = admin_api.get("/api/registry/export/?include_secrets=true").json()
    Server.objects.all().delete()

    first = admin_api.post("/api/registry/import/", exported, format="json")
    assert first.status_code == 200, first.json()
    assert sorted(first.json()["created"]) == ["clock", "quotes-http"]

    clock = Server.objects.get(name="clock")
    assert clock.env == {"API_KEY": SECRET_TOKEN}
    assert clock.args == ["--local-timezone", "UTC"]
    quotes = Server.objects.get(name="quotes-http")
    assert sorted(quotes.tags.values_list("name", flat=True)) == ["prod", "quotes"]
    assert quotes.priority == 7 and quotes.metadata == {"taker_fee": 0.001}

    second = admin_api.post("/api/registry/import/", exported, format="json")
    assert second.json() == {"created": [], "updated": [], "unchanged": ["clock", "quotes-http"], "dry_run": False}


def test_an_import_without_secrets_keeps_the_stored_ones(admin_api, two_servers):
    exported = admin_api.get("/api/registry/export/").json()
    for entry in exported["servers"]:
        entry["priority"] = 1
    response = admin_api.post("/api/registry/import/", exported, format="json")
    assert sorted(response.json()["updated"]) == ["clock", "quotes-http"]
    assert Server.objects.get(name="clock").env == {"API_KEY": SECRET_TOKEN}
    assert Server.objects.get(name="quotes-http").headers == {"Authorization": f"Bearer {SECRET_TOKEN}"}


def test_one_bad_entry_writes_nothing_and_the_error_names_entry_and_field(admin_api, two_servers):
    before = list(Server.objects.values_list("name", "priority", "url"))
    changed_existing = {"name": "quotes-http", "transport": "http", "url": "http://127.0.0.1:9/mcp", "priority": 1}
    bad = {"name": "broken", "transport": "stdio", "command": ""}
    response = admin_api.post("/api/registry/import/", _document(VALID_ENTRY, changed_existing, bad), format="json")

    assert response.status_code == 400
    problems = response.json()["problems"]
    assert any("servers[2] ('broken')" in problem and "'command'" in problem for problem in problems), problems
    assert "Nothing was imported" in response.json()["detail"]
    assert list(Server.objects.values_list("name", "priority", "url")) == before
    assert not Server.objects.filter(name="new-one").exists()


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "must be a JSON object"),
        ({"format": "something-else", "version": 1, "servers": []}, "format"),
        ({"format": DOCUMENT_FORMAT, "version": 99, "servers": []}, "version"),
        ({"format": DOCUMENT_FORMAT, "version": 1, "servers": {"name": "x"}}, "servers: must be a list"),
        (_document("not an object"), "servers[0]: must be an object"),
        (_document({**VALID_ENTRY, "colour": "red"}), "field 'colour': unknown field"),
        (_document(VALID_ENTRY, VALID_ENTRY), "also used by servers[0]"),
        (_document({**VALID_ENTRY, "url": "http://user:pw@127.0.0.1/mcp"}), "field 'url'"),
        (_document({**VALID_ENTRY, "transport": "carrier-pigeon"}), "field 'transport'"),
        (_document({**VALID_ENTRY, "name": "has spaces"}), "field 'name'"),
        (_document({**VALID_ENTRY, "max_concurrency": 0}), "field 'max_concurrency'"),
    ],
)
def test_malformed_documents_are_refused_with_a_clear_reason(admin_api, document, expected):
    response = admin_api.post("/api/registry/import/", document, format="json")
    assert response.status_code == 400
    assert any(expected in problem for problem in response.json()["problems"]), response.json()
    assert not Server.objects.exists()


def test_a_dry_run_reports_but_writes_nothing(admin_api):
    response = admin_api.post("/api/registry/import/?dry_run=true", _document(VALID_ENTRY), format="json")
    assert response.json() == {"created": ["new-one"], "updated": [], "unchanged": [], "dry_run": True}
    assert not Server.objects.exists()


def test_the_command_line_exports_and_imports(tmp_path: Path, two_servers):
    target = tmp_path / "registry.json"
    call_command("registry_export", "--include-secrets", "-o", str(target), stderr=StringIO())
    document = json.loads(target.read_text())
    assert {entry["name"] for entry in document["servers"]} == {"clock", "quotes-http"}

    Server.objects.filter(name="clock").delete()
    out = StringIO()
    call_command("registry_import", str(target), stdout=out)
    assert "created 1, updated 0, unchanged 1" in out.getvalue()
    assert Server.objects.get(name="clock").env == {"API_KEY": SECRET_TOKEN}


def test_the_command_line_import_fails_cleanly_on_a_bad_document(tmp_path: Path, two_servers):
    broken = copy.deepcopy(_document(VALID_ENTRY, {"name": "x", "transport": "http"}))
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(CommandError, match=r"servers\[1\] \('x'\): field 'url'"):
        call_command("registry_import", str(path))
    assert not Server.objects.filter(name="new-one").exists()

    path.write_text("{not json")
    with pytest.raises(CommandError, match="is not valid JSON"):
        call_command("registry_import", str(path))
