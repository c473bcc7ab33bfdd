"""Fusion over the real protocol: the demo exchanges (and a test server that breaks its promises) asked at once.

Expected outcomes are worked out here from the values the sources returned, per strategy.
"""

from __future__ import annotations

import statistics
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from fusion.models import FusionRun, SourceTrust
from fusion.robust import modified_z_scores
from registry.models import Server
from registry.services import server_create
from tests.exchanges import register_exchange, wait_discovered
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TEST_SERVERS = Path(__file__).parents[1] / "mcp_servers"
FIELDS = ["bid", "ask", "last"]


def exchange(name: str, profile: str, *extra: str, priority: int = 100) -> None:
    register_exchange(name, *extra, profile=profile, priority=priority)


def quote_source(name: str, mode: str, price: float = 100.0) -> None:
    server_create(
        name=name,
        transport="stdio",
        command=sys.executable,
        args=[str(TEST_SERVERS / "quote_source.py"), "--mode", mode, "--price", str(price)],
        server_type="quotes",
    )


def ready(live_fleet, *names: str) -> None:  # type: ignore[no-untyped-def]
    wait_discovered(live_fleet, *names)


def values_of(answer: dict, state: str = "used") -> dict[str, dict]:
    return {row["server"]: row["value"] for row in answer["sources"] if row["state"] == state}


def test_median_rejects_betas_bias_and_beta_loses_trust_over_repeated_runs(live_fleet, operator_api):
    for name, profile in (("ex-alpha", "alpha"), ("ex-beta", "beta"), ("ex-delta", "delta"), ("ex-epsilon", "alpha")):
        exchange(name, profile, *(["--transport", "stdio"] if profile == "epsilon" else []))
    exchange("ex-alpha2", "alpha", "--seed", "42")
    names = ["ex-alpha", "ex-beta", "ex-delta", "ex-epsilon", "ex-alpha2"]
    ready(live_fleet, *names)

    trust_of_beta: list[float] = []
    for _ in range(3):
        response = operator_api.post(
            "/api/fusion/query/",
            {
                "tool": "get_quote",
                "arguments": {"symbol": "BTC-USD"},
                "server_type": "exchange",
                "strategy": "median",
                "fields": FIELDS,
                "quorum": 3,
            },
            format="json",
        )
        assert response.status_code == 200, response.json()
        answer = response.json()
        assert answer["quorum_met"] is True and answer["strategy"] == "median"
        assert {row["server"] for row in answer["sources"]} == set(names)
        # Worked out from what the sources said: per field, the modified z-score of every valid value.
        valid = {row["server"]: row["value"] for row in answer["sources"] if row["state"] in ("used", "excluded")}
        outliers = set()
        for field in FIELDS:
            servers = sorted(valid)
            values = [valid[server][field] for server in servers]
            floor = abs(statistics.median(values)) * 5e-4
            outliers |= {s for s, z in zip(servers, modified_z_scores(values, floor=floor), strict=True) if z > 3.5}
        assert outliers == {"ex-beta"}
        beta = next(row for row in answer["sources"] if row["server"] == "ex-beta")
        assert beta["state"] == "excluded" and "outlier" in beta["reason"]
        used = values_of(answer)
        assert set(used) == set(names) - {"ex-beta"}
        for field in FIELDS:
            assert answer["value"][field] == pytest.approx(statistics.median(v[field] for v in used.values()))
            low, high = answer["fields"][field]["interval"]
            assert low <= answer["value"][field] <= high
        assert 0 < answer["confidence"] <= 1
        trust = operator_api.get("/api/fusion/trust/", {"subject": "tool:get_quote"}).json()["results"]
        scores = {row["server"]: row["score"] for row in trust}
        trust_of_beta.append(scores["ex-beta"])
        assert all(scores[name] > scores["ex-beta"] for name in used)

    assert trust_of_beta[0] > trust_of_beta[1] > trust_of_beta[2]
    assert trust_of_beta[2] < django_settings.FUSION_TRUST_PRIOR
    beta_row = SourceTrust.objects.get(server__name="ex-beta", subject="tool:get_quote")
    assert beta_row.observations == 3 and beta_row.agreements == 0

    # The explanation is stored with the run: inputs, the exclusion and why, the method, quorum, trust updates.
    run = operator_api.get(f"/api/fusion/runs/{answer['run_id']}/").json()
    explanation = run["explanation"]
    assert explanation["method"] == {
        "strategy": "median",
        "description": explanation["method"]["description"],
        "options": {"threshold": 3.5, "min_scale_bps": 5.0},
    }
    assert [e["server"] for e in explanation["exclusions"]] == ["ex-beta"]
    assert explanation["quorum"] == {"required": 3, "valid": 5, "met": True}
    updates = {u["server"]: u for u in explanation["trust_updates"]}
    assert updates["ex-beta"]["after"] < updates["ex-beta"]["before"] and not updates["ex-beta"]["agreed"]
    history = operator_api.get("/api/fusion/runs/", {"tool": "get_quote"}).json()
    assert history["count"] == 3 and history["statistics"]["quorum_met"] == 3

    # Other strategies over the same sources, each checked against the values the sources returned.
    response = operator_api.post(
        "/api/fusion/query/",
        {
            "tool": "get_quote",
            "arguments": {"symbol": "ETH-USD"},
            "servers": names,
            "strategy": "weighted_mean",
            "fields": ["last"],
        },
        format="json",
    )
    answer = response.json()
    rows = [row for row in answer["sources"] if row["state"] == "used"]
    expected = sum(r["weight"]["weight"] * r["value"]["last"] for r in rows) / sum(r["weight"]["weight"] for r in rows)
    assert answer["value"]["last"] == pytest.approx(expected, rel=1e-6)
    assert len(rows) == 5  # a mean rejects nobody: beta pulls it up
    assert answer["value"]["last"] > statistics.median(r["value"]["last"] for r in rows)

    response = operator_api.post(
        "/api/fusion/query/",
        {
            "tool": "get_quote",
            "arguments": {"symbol": "ETH-USD"},
            "servers": names,
            "strategy": "majority",
            "fields": ["last"],
            "options": {"tolerance": 0.001},
        },
        format="json",
    )
    answer = response.json()
    assert response.status_code == 200, answer
    assert values_of(answer, "excluded").keys() == {"ex-beta"}
    assert "outvoted" in next(r["reason"] for r in answer["sources"] if r["server"] == "ex-beta")


def test_a_slow_source_times_out_under_a_short_deadline_and_never_delays_the_answer(live_fleet, operator_api):
    exchange("fast-1", "alpha")
    exchange("fast-2", "alpha")
    exchange("slow", "gamma", "--latency-ms", "3000")
    ready(live_fleet, "fast-1", "fast-2", "slow")
    response = operator_api.post(
        "/api/fusion/query/",
        {
            "tool": "get_quote",
            "arguments": {"symbol": "BTC-USD"},
            "servers": ["fast-1", "fast-2", "slow"],
            "fields": FIELDS,
            "quorum": 2,
            "timeout_seconds": 0.5,
            "deadline_seconds": 0.8,
        },
        format="json",
    )
    answer = response.json()
    assert response.status_code == 200, answer
    slow = next(row for row in answer["sources"] if row["server"] == "slow")
    assert slow["state"] == "timed_out" and "timed out" in slow["reason"]
    assert answer["duration_ms"] < 3000  # the answer did not wait for the slow source's 3 s
    assert set(values_of(answer)) == {"fast-1", "fast-2"}


def test_all_sources_failing_is_a_clear_error_with_what_came_in_and_is_never_cached(live_fleet, operator_api):
    exchange("down-1", "alpha", "--outage", "0:3600")
    exchange("down-2", "alpha", "--outage", "0:3600")
    live_fleet.request_reconcile()
    # Down from the start, so they cannot even be discovered: asked by name, they are still asked.
    wait_for(
        lambda: set(Server.objects.filter(name__startswith="down-").values_list("status", flat=True)) == {"degraded"},
        what="both connected (and failing)",
    )
    query = {
        "tool": "get_quote",
        "arguments": {"symbol": "BTC-USD"},
        "servers": ["down-1", "down-2"],
        "fields": FIELDS,
        "cache_ttl_seconds": 60,
    }
    response = operator_api.post("/api/fusion/query/", query, format="json")
    answer = response.json()
    assert response.status_code == 502
    assert answer["quorum_met"] is False and answer["value"] is None
    assert "quorum not met: 0 valid answers of the 1 required" in answer["error"]
    assert {row["state"] for row in answer["sources"]} == {"failed"}
    assert all("outage" in row["reason"] for row in answer["sources"])
    again = operator_api.post("/api/fusion/query/", query, format="json").json()
    assert again["cached"] is False and again["run_id"] != answer["run_id"]  # the failure was not kept
    assert FusionRun.objects.filter(quorum_met=False).count() == 2


def test_malformed_schema_violating_stale_answers_are_excluded_and_quorum_can_fail(live_fleet, operator_api):
    quote_source("good-1", "good", 100.0)
    quote_source("good-2", "good", 102.0)
    quote_source("bad-schema", "schema")
    quote_source("bad-garbage", "garbage")
    quote_source("bad-stale", "stale")
    quote_source("bad-missing", "missing")
    names = ["good-1", "good-2", "bad-schema", "bad-garbage", "bad-stale", "bad-missing"]
    ready(live_fleet, *names)
    query = {
        "tool": "get_quote",
        "arguments": {"symbol": "X-USD"},
        "servers": names,
        "fields": FIELDS,
        "strategy": "weighted_median",
        "max_age_seconds": 60,
        "quorum": 2,
    }
    response = operator_api.post("/api/fusion/query/", query, format="json")
    answer = response.json()
    assert response.status_code == 200, answer
    reasons = {row["server"]: (row["state"], row["reason"]) for row in answer["sources"]}
    assert reasons["bad-schema"][0] == "excluded" and "output schema" in reasons["bad-schema"][1]
    assert "'one hundred' is not of type 'number'" in reasons["bad-schema"][1]
    assert reasons["bad-garbage"][0] == "excluded" and "did not return structured content" in reasons["bad-garbage"][1]
    assert reasons["bad-stale"][0] == "excluded" and "stale" in reasons["bad-stale"][1]
    assert reasons["bad-missing"][0] == "excluded" and "no field 'last'" in reasons["bad-missing"][1]
    assert set(values_of(answer)) == {"good-1", "good-2"}
    assert answer["value"]["last"] in (100.0, 102.0, 101.0)

    response = operator_api.post("/api/fusion/query/", {**query, "quorum": 3}, format="json")
    answer = response.json()
    assert response.status_code == 502 and answer["quorum_met"] is False
    assert "2 valid answers of the 3 required" in answer["error"]
    assert len(answer["sources"]) == 6 and set(values_of(answer)) == {"good-1", "good-2"}


def test_cache_hits_expiry_and_concurrent_identical_queries_sharing_one_fan_out(live_fleet, operator_api):
    exchange("cached-1", "alpha")
    exchange("slowish", "alpha", "--latency-ms", "600")
    ready(live_fleet, "cached-1", "slowish")
    _cache_and_single_flight(operator_api)


def _cache_and_single_flight(operator_api) -> None:  # type: ignore[no-untyped-def]
    query = {
        "tool": "get_quote",
        "arguments": {"symbol": "SOL-USD"},
        "servers": ["cached-1", "slowish"],
        "fields": ["last"],
        "cache_ttl_seconds": 1.5,
    }
    first = operator_api.post("/api/fusion/query/", query, format="json").json()
    second = operator_api.post("/api/fusion/query/", query, format="json").json()
    assert first["cached"] is False and second["cached"] is True and second["run_id"] == first["run_id"]
    stats = operator_api.get("/api/fusion/runs/").json()["statistics"]["cache"]
    assert stats["hits"] >= 1 and stats["misses"] >= 1
    # After the TTL the next query asks the servers again.
    wait_for(
        lambda: operator_api.post("/api/fusion/query/", query, format="json").json()["cached"] is False,
        what="the cached answer to expire",
    )

    from fusion.engine import run_query
    from fusion.query import parse_query

    concurrent_query = parse_query({**query, "cache_ttl_seconds": 0, "arguments": {"symbol": "ETH-USD"}})
    before = FusionRun.objects.count()
    answers: list[dict] = []
    barrier = threading.Barrier(5)

    def ask() -> None:
        barrier.wait()
        answers.append(run_query(concurrent_query, caller="test"))

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 5
    assert len({answer["run_id"] for answer in answers}) == 1
    assert sum(answer["shared"] for answer in answers) == 4
    assert FusionRun.objects.count() == before + 1

    # Every run was published on the bus, in order, with its outcome.
    wait_for(
        lambda: len(operator_api.get("/api/events/", {"stream": "fusion.runs"}).json()["results"]) >= 3,
        what="the runs on the bus",
    )
    events = operator_api.get("/api/events/", {"stream": "fusion.runs"}).json()["results"]
    assert {event["kind"] for event in events} == {"completed"}
    assert answers[0]["run_id"] in {event["payload"]["run_id"] for event in events}


def test_a_resource_is_fused_too(live_fleet, operator_api):
    """Two copies of the alpha exchange offer the same ticker resource: read from both and fused."""
    exchange("res-1", "alpha")
    exchange("res-2", "alpha")
    ready(live_fleet, "res-1", "res-2")
    uri = "exchange://alpha/ticker/BTC-USD"
    response = operator_api.post(
        "/api/fusion/query/",
        {"resource": uri, "strategy": "weighted_median", "fields": ["bid", "ask"], "quorum": 2},
        format="json",
    )
    answer = response.json()
    assert response.status_code == 200, answer
    assert answer["resource"] == uri and {row["server"] for row in answer["sources"]} == {"res-1", "res-2"}
    assert set(values_of(answer)) == {"res-1", "res-2"}
    assert answer["value"]["bid"] < answer["value"]["ask"]
    bad = operator_api.post("/api/fusion/query/", {"resource": "exchange://nowhere/x"}, format="json")
    assert bad.status_code == 400 and "resource" in bad.json()
