"""Fusion is safe to point at a fleet: servers in maintenance are left out (and said to be), and a tool that changes
state is not fanned out without an explicit opt-in. Over the real protocol, with the demo exchanges."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from fusion.models import FusionRun
from health.models import MaintenanceWindow
from registry.models import CallRecord, Server, ServerStatus
from tests.exchanges import register_exchange, wait_discovered
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

QUOTE = {"tool": "get_quote", "arguments": {"symbol": "BTC-USD"}, "fields": ["bid", "ask"]}


def status_of(name: str) -> str:
    return Server.objects.get(name=name).status


def post(api, body: dict):  # type: ignore[no-untyped-def]
    return api.post("/api/fusion/query/", body, format="json")


def test_a_server_in_maintenance_is_not_asked_and_is_reported_excluded(live_fleet, operator_api):
    for name in ("calm-alpha", "calm-beta", "resting-gamma"):
        register_exchange(name, profile="alpha")
    Server.objects.filter(name="resting-gamma").update(server_type="resting")
    window = MaintenanceWindow.objects.create(
        name="gamma upgrade",
        server_type="resting",
        starts_at=timezone.now() - timedelta(minutes=1),
        ends_at=timezone.now() + timedelta(hours=1),
    )
    wait_discovered(live_fleet, "calm-alpha", "calm-beta", "resting-gamma")
    # Health decides the status; fusion reads it (no window evaluated in fusion).
    wait_for(lambda: status_of("resting-gamma") == ServerStatus.MAINTENANCE, what="gamma in maintenance")
    wait_for(
        lambda: status_of("calm-alpha") == ServerStatus.ONLINE and status_of("calm-beta") == ServerStatus.ONLINE,
        what="alpha and beta online",
    )

    response = post(operator_api, {**QUOTE, "servers": ["calm-alpha", "calm-beta", "resting-gamma"], "quorum": 2})
    assert response.status_code == 200, response.json()
    answer = response.json()
    rows = {row["server"]: row for row in answer["sources"]}
    assert rows["resting-gamma"]["state"] == "excluded"
    assert rows["resting-gamma"]["reason"].startswith("maintenance")
    assert rows["resting-gamma"]["status"] == "maintenance"
    assert rows["resting-gamma"]["value"] is None and rows["resting-gamma"]["latency_ms"] is None
    assert {rows["calm-alpha"]["state"], rows["calm-beta"]["state"]} == {"used"}
    assert "resting-gamma (maintenance)" in answer["decision"]
    run = FusionRun.objects.get(pk=answer["run_id"])
    assert run.sources_asked == 2 and run.sources_used == 2
    # Not asked, so not judged: no trust learned for gamma from a run it was not in.
    assert "resting-gamma" not in {update["server"] for update in run.explanation["trust_updates"]}
    # The fleet API's call log has no fusion call to gamma.
    assert not CallRecord.objects.filter(server__name="resting-gamma", caller="fusion").exists()

    # When maintenance leaves too few to meet the quorum, the 400 says so at the quorum.
    response = post(operator_api, {**QUOTE, "servers": ["calm-alpha", "calm-beta", "resting-gamma"], "quorum": 3})
    assert response.status_code == 400
    assert "resting-gamma in maintenance" in " ".join(response.json()["quorum"])

    # The window closes: health brings gamma back and fusion asks it again.
    window.delete()
    wait_for(lambda: status_of("resting-gamma") == ServerStatus.ONLINE, what="gamma back online")
    response = post(operator_api, {**QUOTE, "servers": ["calm-alpha", "calm-beta", "resting-gamma"], "quorum": 3})
    assert response.status_code == 200, response.json()
    assert {row["state"] for row in response.json()["sources"]} == {"used"}


def test_a_tool_that_changes_state_is_refused_without_the_opt_in(live_fleet, operator_api):
    for name in ("book-alpha", "book-beta"):
        register_exchange(name, profile="alpha")
    wait_discovered(live_fleet, "book-alpha", "book-beta", tool="reserve_order")
    reserve = {
        "tool": "reserve_order",
        "arguments": {"symbol": "BTC-USD", "side": "buy", "quantity": 0.001},
        "server_type": "exchange",
    }
    for tool in ("reserve_order", "confirm_order", "cancel_order"):
        body = {**reserve, "tool": tool} if tool == "reserve_order" else {"tool": tool, "server_type": "exchange"}
        response = post(operator_api, body)
        assert response.status_code == 400, (tool, response.json())
        (message,) = response.json()["tool"]
        assert "changes state" in message and "readOnlyHint: false" in message and "allow_state_changing" in message
    assert not FusionRun.objects.exists()  # refused before anyone was asked

    # Not an opt-in: anything but a JSON true.
    for value in ("true", 1, "yes"):
        response = post(operator_api, {**reserve, "allow_state_changing": value})
        assert response.status_code == 400 and "allow_state_changing" in response.json(), value

    # A read is fanned out as before, without the opt-in.
    response = post(operator_api, {**QUOTE, "server_type": "exchange"})
    assert response.status_code == 200, response.json()

    # The explicit opt-in: each source is asked, and each reserves.
    response = post(operator_api, {**reserve, "allow_state_changing": True})
    assert response.status_code in (200, 502), response.json()
    answer = response.json()
    assert {row["server"] for row in answer["sources"]} == {"book-alpha", "book-beta"}
    assert {row["state"] for row in answer["sources"]} <= {"used", "excluded"}  # both answered
    run = FusionRun.objects.get(pk=answer["run_id"])
    assert run.query["allow_state_changing"] is True


def test_the_operator_can_mark_an_unannotated_tool_in_the_servers_metadata(live_fleet, operator_api):
    server = register_exchange("marked-alpha", profile="alpha")
    wait_discovered(live_fleet, "marked-alpha")
    assert post(operator_api, {**QUOTE, "servers": ["marked-alpha"]}).status_code == 200
    server.metadata = {"state_changing_tools": ["get_quote"]}  # the operator knows better than the annotation
    server.save(update_fields=["metadata"])
    response = post(operator_api, {**QUOTE, "servers": ["marked-alpha"]})
    assert response.status_code == 400
    assert "marked-alpha names it in its metadata (state_changing_tools)" in response.json()["tool"][0]
    response = post(operator_api, {**QUOTE, "servers": ["marked-alpha"], "allow_state_changing": True})
    assert response.status_code == 200, response.json()


def test_the_schema_documents_the_opt_in_and_the_rule(viewer_api):
    schema = viewer_api.get("/api/schema/?format=json").json()
    body = schema["components"]["schemas"]["FusionQuery"]["properties"]["allow_state_changing"]
    assert body["type"] == "boolean" and "readOnlyHint" in body["description"]
    assert "state_changing_tools" in body["description"]
