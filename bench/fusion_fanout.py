"""Fusion: a fan-out to 8 sources of 50 ms each against the slowest single source, answers from the cache through
the API and in-process, and the engine's overhead per source against bare SDK calls, all in the same run.

    .venv/bin/python -m bench.fusion_fanout
    .venv/bin/python -m bench.fusion_fanout --sources 8 --latency-ms 50 --rounds 30 --json

The sources are demo exchanges, each `get_quote` taking --latency-ms: by default all served from one process over
Streamable HTTP (as sources on other machines would be: their work does not compete for this machine's two cores),
or one stdio process each (--transport stdio).
Per round: every source called alone through the fleet API (the slowest of them is the round's "slowest single
source"), one fused query (median of bid/ask/last over all sources, stored with its explanation), and the same 8
calls made at once with bare SDK Clients. Reported: medians over the rounds.

Target: fused latency at most 1.1x the slowest single source. Printed as PASS/FAIL, never raised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench._scratch import setup_scratch_django

REPO = Path(__file__).resolve().parents[1]


def setup_django() -> None:
    setup_scratch_django("fusion_fanout")


def exchange_argv(latency_ms: float) -> list[str]:
    return [
        "-m",
        "exchange_fleet",
        "serve",
        "--profile",
        "alpha",
        "--latency-ms",
        str(latency_ms),
        "--jitter-ms",
        "0",
        "--tick-interval",
        "60",
        "--no-outages",
        "--error-rate",
        "0",
    ]


async def bare_fan_out(targets: list[Any], rounds: int) -> tuple[list[float], float]:
    """The same calls with bare SDK Clients, all at once: wall ms per round and CPU ms per round."""
    from contextlib import AsyncExitStack

    from mcp import Client

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(Client(target, read_timeout_seconds=30, cache=None)) for target in targets
        ]
        for client in clients:  # warm-up: output schemas fetched
            await client.call_tool("get_quote", {"symbol": "BTC-USD"})
        walls: list[float] = []
        cpu = time.process_time()
        for _ in range(rounds):
            started = time.perf_counter()
            await asyncio.gather(*(client.call_tool("get_quote", {"symbol": "BTC-USD"}) for client in clients))
            walls.append((time.perf_counter() - started) * 1000)
        return walls, (time.process_time() - cpu) * 1000 / rounds


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.test import Client as HttpClient
    from mcp import StdioServerParameters

    from bench.supervisor_scale import wait
    from exchange_fleet.launcher import free_port, start_http_exchange_fleet, stop_process
    from fleet import calls as fleet_calls
    from fleet.application import FleetApplication
    from fusion.engine import run_query
    from fusion.models import FusionRun
    from fusion.query import parse_query
    from registry.models import Capability, Server
    from registry.services import server_create

    result: dict[str, Any] = {
        "sources": args.sources,
        "latency_ms": args.latency_ms,
        "rounds": args.rounds,
        "transport": args.transport,
    }
    process = None
    application = FleetApplication()  # as `manage.py serve` builds it
    try:
        names = [f"src{index}" for index in range(args.sources)]
        bare_targets: list[Any] = []
        if args.transport == "http":
            knobs = ["--latency-ms", str(args.latency_ms), "--jitter-ms", "0", "--error-rate", "0"]
            process, urls = start_http_exchange_fleet(
                args.sources, free_port(), *knobs, "--tick-interval", "60", "--no-outages"
            )
            for name, url in zip(names, urls, strict=True):
                server_create(name=name, transport="http", url=url, server_type="bench")
            bare_targets = list(urls)
        else:
            argv = exchange_argv(args.latency_ms)
            for name in names:
                server_create(
                    name=name, transport="stdio", command=sys.executable, args=argv, cwd=str(REPO), server_type="bench"
                )
            bare_targets = [StdioServerParameters(command=sys.executable, args=argv, cwd=str(REPO)) for _ in names]
        application.start()
        wait(lambda: Capability.objects.filter(name="get_quote").count() == len(names), timeout=120, step=0.2)
        query = parse_query(
            {
                "tool": "get_quote",
                "arguments": {"symbol": "BTC-USD"},
                "servers": names,
                "strategy": "median",
                "fields": ["bid", "ask", "last"],
                "quorum": len(names),
                "timeout_seconds": 5,
                "deadline_seconds": 6,
            }
        )
        rows = {server.name: server for server in Server.objects.filter(name__in=names)}
        for _ in range(3):  # warm-up: sessions, schemas, the ORM's first queries
            run_query(query, caller="bench")
            for name in names:
                fleet_calls.call_tool_sync(rows[name], "get_quote", {"symbol": "BTC-USD"}, caller="bench")

        if os.environ.get("FUSION_PROFILE"):
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(10):
                run_query(query, caller="bench")
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
        slowest, fused, fused_cpu = [], [], []
        phases: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            singles = []
            for name in names:
                started = time.perf_counter()
                fleet_calls.call_tool_sync(rows[name], "get_quote", {"symbol": "BTC-USD"}, caller="bench")
                singles.append((time.perf_counter() - started) * 1000)
            slowest.append(max(singles))
            started, cpu = time.perf_counter(), time.process_time()
            answer = run_query(query, caller="bench")
            fused.append((time.perf_counter() - started) * 1000)
            fused_cpu.append((time.process_time() - cpu) * 1000)
            assert answer["quorum_met"] and not answer["error"], answer["error"]
            timing = FusionRun.objects.get(pk=answer["run_id"]).explanation["timing"]
            for phase in ("plan_ms", "fan_out_ms", "evaluate_ms"):
                phases.setdefault(phase, []).append(timing[phase])
        bare_walls, bare_cpu = asyncio.run(bare_fan_out(bare_targets, args.rounds))

        result["slowest_single_p50_ms"] = round(statistics.median(slowest), 2)
        result["fused_p50_ms"] = round(statistics.median(fused), 2)
        result["fused_p95_ms"] = round(sorted(fused)[int(0.95 * (len(fused) - 1))], 2)
        result["ratio_to_slowest_single"] = round(result["fused_p50_ms"] / result["slowest_single_p50_ms"], 3)
        result["bare_fan_out_p50_ms"] = round(statistics.median(bare_walls), 2)
        result["overhead_per_source_ms"] = round(
            (result["fused_p50_ms"] - result["bare_fan_out_p50_ms"]) / len(names), 3
        )
        result["fused_cpu_ms"] = round(statistics.median(fused_cpu), 2)
        result["bare_cpu_ms"] = round(bare_cpu, 2)
        result["cpu_per_source_ms"] = round(result["fused_cpu_ms"] / len(names), 3)
        result["bare_cpu_per_source_ms"] = round(bare_cpu / len(names), 3)
        result["phases_p50_ms"] = {phase: round(statistics.median(values), 2) for phase, values in phases.items()}
        result["verdict"] = "PASS" if result["ratio_to_slowest_single"] <= 1.1 else "FAIL"

        # From the cache: in-process, and through the API (middleware, authentication, DRF, JSON both ways).
        cached_query = parse_query({**query.to_json(), "servers": names, "cache_ttl_seconds": 600})
        run_query(cached_query, caller="bench")
        started = time.perf_counter()
        for _ in range(args.cache_queries):
            assert run_query(cached_query, caller="bench")["cached"]
        result["cached_in_process_qps"] = round(args.cache_queries / (time.perf_counter() - started))
        user = User.objects.create_superuser("bench", password="bench-password-1")
        http = HttpClient()
        http.force_login(user)
        body = json.dumps(
            {**{k: v for k, v in cached_query.to_json().items() if v is not None}, "cache_ttl_seconds": 600}
        )
        calls = min(args.cache_queries, 1_000)  # under the API's per-user throttle
        started = time.perf_counter()
        for _ in range(calls):
            response = http.post("/api/fusion/query/", body, content_type="application/json")
            assert response.status_code == 200 and response.json()["cached"], response.content[:200]
        result["cached_api_qps"] = round(calls / (time.perf_counter() - started))
    finally:
        application.stop()
        if process is not None:
            stop_process(process)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fusion_fanout", description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=8)
    parser.add_argument("--transport", choices=["http", "stdio"], default="http")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cache-queries", type=int, default=2_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    setup_django()
    result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"Fusion fan-out: {result['sources']} sources of {result['latency_ms']:g} ms over {result['transport']}, "
        f"{result['rounds']} rounds\n"
    )
    print(f"  slowest single source (fleet API) p50  {result['slowest_single_p50_ms']:>8.2f} ms")
    print(
        f"  fused query p50 / p95                  {result['fused_p50_ms']:>8.2f} / {result['fused_p95_ms']:.2f} ms"
        f"   ratio {result['ratio_to_slowest_single']:.3f}  (target <= 1.1)  {result['verdict']}"
    )
    print(f"  phases p50: {result['phases_p50_ms']}")
    print(f"  bare SDK fan-out p50                   {result['bare_fan_out_p50_ms']:>8.2f} ms")
    print(f"  overhead per source (wall)             {result['overhead_per_source_ms']:>8.3f} ms")
    print(
        f"  CPU per source: fused / bare SDK       {result['cpu_per_source_ms']:>8.3f} / "
        f"{result['bare_cpu_per_source_ms']:.3f} ms"
    )
    print(f"  cached answers in-process              {result['cached_in_process_qps']:>8} queries/s")
    print(f"  cached answers through the API         {result['cached_api_qps']:>8} queries/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
