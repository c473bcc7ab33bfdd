"""Planning from what this process keeps: no database round trip for a query planned before, and every change made
in this process (a server, its status, its discovery, the trust a run taught) seen by the very next plan."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fusion.evaluation import Evaluation, Observation
from fusion.models import SourceTrust
from fusion.quality import decayed_trust
from fusion.query import FusionQuery, QueryError
from fusion.services import record_run, reset_trust
from fusion.sources import cached_plan, plan_sources
from mcp_client import DiscoveredCapabilities
from registry import announcements
from registry.models import Server
from registry.services import capabilities_record, server_create, server_status_transition

SCHEMA = {"type": "object", "properties": {"symbol": {"type": "string"}}, "required": ["symbol"]}
QUERY = FusionQuery(tool="get_quote", arguments={"symbol": "BTC-USD"}, server_type="exchange")


def discovered(server: Server, *tools: str) -> None:
    capabilities_record(
        server=server,
        discovered=DiscoveredCapabilities(
            protocol_version="2025-11-25",
            era="handshake",
            server_info=None,
            instructions=None,
            capabilities={"tools": {}},
            tools=[{"name": name, "inputSchema": SCHEMA} for name in tools],
        ),
    )


def exchange(name: str, *, priority: int = 100) -> Server:
    server = server_create(
        name=name, transport="stdio", command="python", args=["-m", "x"], server_type="exchange", priority=priority
    )
    discovered(server, "get_quote")
    return server


@pytest.mark.django_db
def test_a_query_planned_before_is_planned_without_the_database(django_assert_num_queries):
    exchange("one")
    exchange("two", priority=200)
    first = plan_sources(QUERY, timezone.now())
    with django_assert_num_queries(0):
        again = plan_sources(QUERY, timezone.now())
        kept = cached_plan(QUERY, timezone.now())
    assert [plan.server for plan in again] == [plan.server for plan in first] == ["two", "one"]
    assert kept == again
    with pytest.raises(QueryError) as bad:  # arguments are still checked against the kept schema, every time
        cached_plan(FusionQuery(tool="get_quote", arguments={"symbol": 5}, server_type="exchange"), timezone.now())
    assert "arguments.symbol" in bad.value.errors


@pytest.mark.django_db
def test_changes_in_this_process_are_planned_at_once():
    one = exchange("one")
    exchange("two", priority=200)
    assert [plan.server for plan in plan_sources(QUERY, timezone.now())] == ["two", "one"]

    exchange("three", priority=300)  # a new server
    assert [plan.server for plan in plan_sources(QUERY, timezone.now())] == ["three", "two", "one"]

    # A status written by the health monitor (a queryset update, announced once committed) reorders the sources.
    transition = server_status_transition(server_id=one.pk, status="online", reason="answering", source="health")
    assert transition is not None
    announcements.status_changed(transition)
    assert [(plan.server, plan.status) for plan in plan_sources(QUERY, timezone.now())][0] == ("one", "online")

    discovered(Server.objects.get(name="three"), "get_book")  # rediscovered without the tool
    assert [plan.server for plan in plan_sources(QUERY, timezone.now())] == ["one", "two"]

    two = Server.objects.get(name="two")
    two.enabled = False
    two.save()
    with pytest.raises(QueryError) as disabled:
        plan_sources(FusionQuery(tool="get_quote", servers=("one", "two")), timezone.now())
    assert disabled.value.errors == {"servers": ["Not enabled: two."]}

    row = SourceTrust.objects.create(server=one, subject=QUERY.subject, score=0.2, updated_at=timezone.now())
    now = timezone.now()
    assert plan_sources(QUERY, now)[0].trust == pytest.approx(decayed_trust(row.score, row.updated_at, now))


@pytest.mark.django_db(transaction=True)
def test_the_trust_a_run_teaches_is_the_trust_the_next_plan_uses(django_assert_num_queries):
    exchange("one")
    exchange("two")
    plan_sources(QUERY, timezone.now())
    evaluation = Evaluation(
        ok=True,
        quorum_met=True,
        value=1.0,
        confidence=0.5,
        error="",
        sources=[],
        fields={},
        valid_answers=2,
        explanation={},
        observations=[Observation("one", 1.0, "agreed"), Observation("two", 0.0, "disagreed")],
    )
    started_at = timezone.now()
    record_run(QUERY, evaluation, caller="test", started_at=started_at, started=0.0, phases={})
    rows = {row.server.name: row for row in SourceTrust.objects.select_related("server")}
    assert rows["one"].score > rows["two"].score
    now = timezone.now()
    with django_assert_num_queries(0):
        plans = {plan.server: plan for plan in plan_sources(QUERY, now)}
    for name, row in rows.items():
        assert plans[name].trust == pytest.approx(decayed_trust(row.score, row.updated_at, now))


def agreeing(*names: str) -> Evaluation:
    return Evaluation(
        ok=True,
        quorum_met=True,
        value=1.0,
        confidence=1.0,
        error="",
        sources=[],
        fields={},
        valid_answers=len(names),
        explanation={},
        observations=[Observation(name, 1.0, "agreed") for name in names],
    )


@pytest.mark.django_db
def test_trust_is_learned_by_the_planned_ids_and_skips_a_server_deleted_while_asked():
    one, two = exchange("one"), exchange("two")
    plans = {plan.server: plan.server_id for plan in plan_sources(QUERY, timezone.now())}
    assert plans == {"one": one.pk, "two": two.pk}
    record_run(
        QUERY, agreeing("one", "two"), caller="t", started_at=timezone.now(), started=0.0, phases={}, server_ids=plans
    )
    # Known rows: locked, updated and the run stored, with no read of the servers.
    with CaptureQueriesContext(connection) as queries:
        run = record_run(
            QUERY, agreeing("one"), caller="t", started_at=timezone.now(), started=0.0, phases={}, server_ids=plans
        )
    assert [update["server"] for update in run.explanation["trust_updates"]] == ["one"]
    assert not [query for query in queries.captured_queries if '"registry_server"' in query["sql"]]
    two.delete()  # while the next run asked it
    gone = record_run(
        QUERY, agreeing("one", "two"), caller="t", started_at=timezone.now(), started=0.0, phases={}, server_ids=plans
    )
    assert [update["server"] for update in gone.explanation["trust_updates"]] == ["one"]
    assert SourceTrust.objects.get(server=one).observations == 3


@pytest.mark.django_db
def test_resetting_trust_clears_what_planning_keeps():
    one = exchange("one")
    SourceTrust.objects.create(server=one, subject=QUERY.subject, score=0.1, updated_at=timezone.now(), observations=5)
    assert plan_sources(QUERY, timezone.now())[0].trust < 0.2
    reset_trust(SourceTrust.objects.all(), timezone.now())
    assert plan_sources(QUERY, timezone.now())[0].trust == pytest.approx(settings.FUSION_TRUST_PRIOR)
