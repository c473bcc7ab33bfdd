"""The serving path: the same upstream called by a bare SDK client and through the orchestrator's REST API.

    .venv/bin/python -m bench.serving_path                         # 1 / 20 / 100 callers, tool calls and fusion
    .venv/bin/python -m bench.serving_path --concurrency 1,20 --calls 400 --json

What runs, all on 127.0.0.1, in one run so the ratios compare like with like:
- upstream: demo exchange alpha over Streamable HTTP with a 0 ms tool (`--latency-ms`), its own process;
- the orchestrator: `manage.py serve` as a real process (its own scratch SQLite database in var/bench/serving_path,
  DEBUG off), the upstream registered through the API, token auth as an integration would use it;
- bare: an SDK `Client` of the upstream in this process; API: `POST /api/servers/<name>/call/` over HTTP keep-alive
  connections (one per caller) with `Authorization: Token ...`.
Each level runs bare and API alternately, round by round. Reported per level: calls/s, p50 and p95 latency, and the
ratios. Then fusion: three upstreams with 10/20/30 ms tools, `POST /api/fusion/query/` (no cache) sequentially
against the slowest source called bare.

Targets (issue "one home for the runtime ... serving path"): API p50 <= bare p50 + 3 ms; at 20 callers API calls/s
>= 0.5x bare; fusion p50 <= 1.1x the slowest source's p50 + 3 ms. Printed as PASS/FAIL, never raised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "bench-serving-path-password"
QUOTE = {"tool": "get_quote", "arguments": {"symbol": "BTC-USD"}}


@dataclass
class Level:
    concurrency: int
    calls: int
    bare_rps: float
    api_rps: float
    bare_p50_ms: float
    api_p50_ms: float
    bare_p95_ms: float
    api_p95_ms: float
    added_p50_ms: float
    throughput_ratio: float
    verdict: str


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def drive(call: Callable[[int], Awaitable[Any]], concurrency: int, total: int) -> tuple[float, list[float]]:
    """`total` calls from `concurrency` callers (caller index passed to `call`); (elapsed seconds, latencies ms)."""
    latencies: list[float] = []
    remaining = total

    async def caller(index: int) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await call(index)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(caller(index) for index in range(concurrency)))
    return time.perf_counter() - started, latencies


class Orchestrator:
    """`manage.py serve` in a scratch directory, stopped with SIGTERM like an operator's Ctrl-C."""

    def __init__(self, port: int, keep_services: bool, *, scratch_name: str = "serving_path") -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.scratch = REPO / "var" / "bench" / scratch_name
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)
        self.env = dict(os.environ)
        if not keep_services:
            self.env.pop("DATABASE_URL", None)
            self.env.pop("REDIS_URL", None)
        self.env.update(
            ORCHESTRATOR_VAR_DIR=str(self.scratch),
            DEBUG="0",
            SECRET_KEY="bench-only-" + "x" * 50,
            DJANGO_SETTINGS_MODULE="orchestrator_site.settings",
            SESSION_COOKIE_SECURE="0",
            CSRF_COOKIE_SECURE="0",
            # The per-user API rate (6,000/min by default) is a policy, not a cost: the benchmark measures capacity.
            API_THROTTLE_USER="100000000/min",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def manage(self, *argv: str) -> None:
        subprocess.run([sys.executable, "manage.py", *argv], cwd=REPO, env=self.env, check=True, timeout=180)

    def start(self) -> None:
        from exchange_fleet.launcher import wait_for_port

        self.manage("migrate", "-v0")
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            f"User.objects.create_superuser('bench-admin', 'bench@example.invalid', {PASSWORD!r})",
        )
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port)],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process, 60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def api_token(base: str) -> str:
    import httpx2

    async with httpx2.AsyncClient(base_url=base, timeout=30) as client:
        answer = await client.post("/api/auth/token/", data={"username": "bench-admin", "password": PASSWORD})
        answer.raise_for_status()
        return answer.json()["token"]


async def register(base: str, token: str, name: str, url: str, server_type: str) -> None:
    """Register an upstream and wait until a call through the API answers (session up, tools discovered)."""
    import httpx2

    headers = {"Authorization": f"Token {token}"}
    async with httpx2.AsyncClient(base_url=base, timeout=30, headers=headers) as client:
        body = {"name": name, "transport": "http", "url": url, "server_type": server_type, "max_concurrency": 256}
        answer = await client.post("/api/servers/", json=body)
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"registering {name}: {answer.status_code} {answer.text[:300]}")
        deadline = time.monotonic() + 60
        while True:
            answer = await client.post(f"/api/servers/{name}/call/", json=QUOTE)
            if answer.status_code == 200:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} never answered through the API: {answer.status_code} {answer.text[:300]}")
            await asyncio.sleep(0.2)


async def measure_calls(args: argparse.Namespace, upstream_url: str, base: str, token: str) -> list[Level]:
    import httpx2
    from mcp import Client

    levels: list[Level] = []
    headers = {"Authorization": f"Token {token}"}
    max_callers = max(args.concurrency)
    limits = httpx2.Limits(max_connections=max_callers, max_keepalive_connections=max_callers)
    async with (
        Client(upstream_url, read_timeout_seconds=30) as bare,
        httpx2.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as api,
    ):

        async def bare_call(_index: int) -> None:
            result = await bare.call_tool("get_quote", {"symbol": "BTC-USD"})
            assert not result.is_error

        async def api_call(_index: int) -> None:
            answer = await api.post("/api/servers/bench-alpha/call/", json=QUOTE)
            if answer.status_code != 200:
                raise RuntimeError(f"API call failed: {answer.status_code} {answer.text[:300]}")

        for _ in range(20):  # warm both paths (connections, caches)
            await bare_call(0)
            await api_call(0)
        for concurrency in args.concurrency:
            per_round = max(concurrency * 4, args.calls // args.rounds)
            bare_time = api_time = 0.0
            bare_lat: list[float] = []
            api_lat: list[float] = []
            for _round in range(args.rounds):
                elapsed, latencies = await drive(bare_call, concurrency, per_round)
                bare_time += elapsed
                bare_lat += latencies
                elapsed, latencies = await drive(api_call, concurrency, per_round)
                api_time += elapsed
                api_lat += latencies
            bare_rps, api_rps = len(bare_lat) / bare_time, len(api_lat) / api_time
            bare_p50, api_p50 = statistics.median(bare_lat), statistics.median(api_lat)
            added = api_p50 - bare_p50
            ratio = api_rps / bare_rps
            ok = True
            if concurrency == 1:
                ok = added <= 3.0
            elif concurrency == 20:
                ok = ratio >= 0.5
            levels.append(
                Level(
                    concurrency=concurrency,
                    calls=len(api_lat),
                    bare_rps=round(bare_rps, 1),
                    api_rps=round(api_rps, 1),
                    bare_p50_ms=round(bare_p50, 2),
                    api_p50_ms=round(api_p50, 2),
                    bare_p95_ms=round(percentile(bare_lat, 0.95), 2),
                    api_p95_ms=round(percentile(api_lat, 0.95), 2),
                    added_p50_ms=round(added, 2),
                    throughput_ratio=round(ratio, 3),
                    verdict="PASS" if ok else "FAIL",
                )
            )
    return levels


async def measure_fusion(args: argparse.Namespace, urls: list[str], base: str, token: str) -> dict[str, Any]:
    import httpx2
    from mcp import Client

    headers = {"Authorization": f"Token {token}"}
    body = {
        "tool": "get_quote",
        "arguments": {"symbol": "BTC-USD"},
        "server_type": "bench-fusion",
        "strategy": "median",
        "fields": ["bid", "ask", "last"],
        "cache_ttl_seconds": 0,
        "timeout_seconds": 5,
    }
    slowest_lat: list[float] = []
    fused_lat: list[float] = []
    async with (
        Client(urls[-1], read_timeout_seconds=30) as slowest,
        httpx2.AsyncClient(base_url=base, headers=headers, timeout=60) as api,
    ):
        for index in range(args.fusion_calls + 5):
            started = time.perf_counter()
            await slowest.call_tool("get_quote", {"symbol": "BTC-USD"})
            bare_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            answer = await api.post("/api/fusion/query/", json=body)
            fused_ms = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise RuntimeError(f"fusion query failed: {answer.status_code} {answer.text[:300]}")
            if answer.json().get("cached"):
                raise RuntimeError("fusion answered from its cache; the benchmark asks for none")
            if index >= 5:  # the first few warm both paths
                slowest_lat.append(bare_ms)
                fused_lat.append(fused_ms)
    slowest_p50, fused_p50 = statistics.median(slowest_lat), statistics.median(fused_lat)
    bound = 1.1 * slowest_p50 + 3.0
    return {
        "sources": len(urls),
        "calls": len(fused_lat),
        "slowest_source_p50_ms": round(slowest_p50, 2),
        "slowest_source_p95_ms": round(percentile(slowest_lat, 0.95), 2),
        "fusion_p50_ms": round(fused_p50, 2),
        "fusion_p95_ms": round(percentile(fused_lat, 0.95), 2),
        "target_ms": round(bound, 2),
        "ratio": round(fused_p50 / slowest_p50, 3),
        "verdict": "PASS" if fused_p50 <= bound else "FAIL",
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from exchange_fleet.launcher import free_port, start_http_exchange, stop_process

    children: list[subprocess.Popen] = []
    orchestrator = Orchestrator(free_port(), args.keep_services)
    try:
        port = free_port()
        children.append(
            start_http_exchange("alpha", port, "--latency-ms", str(args.latency_ms), "--jitter-ms", "0", quiet=True)
        )
        upstream = f"http://127.0.0.1:{port}/mcp"
        fusion_urls = []
        for latency in (10, 20, 30):
            fusion_port = free_port()
            children.append(
                start_http_exchange("alpha", fusion_port, "--latency-ms", str(latency), "--jitter-ms", "0", quiet=True)
            )
            fusion_urls.append(f"http://127.0.0.1:{fusion_port}/mcp")
        orchestrator.start()
        token = await api_token(orchestrator.base)
        await register(orchestrator.base, token, "bench-alpha", upstream, "bench-single")
        for index, url in enumerate(fusion_urls):
            await register(orchestrator.base, token, f"bench-fusion-{index}", url, "bench-fusion")
        levels = await measure_calls(args, upstream, orchestrator.base, token)
        fusion = await measure_fusion(args, fusion_urls, orchestrator.base, token)
    finally:
        orchestrator.stop()
        for child in children:
            stop_process(child)
    return {"latency_ms": args.latency_ms, "levels": [asdict(level) for level in levels], "fusion": fusion}


def print_report(report: dict[str, Any]) -> None:
    tool = f"{report['latency_ms']:g} ms tool"
    print(f"Tool calls to one upstream ({tool}): bare SDK client vs POST /api/servers/<name>/call/")
    header = f"{'callers':>7} {'calls':>6} {'bare/s':>8} {'api/s':>8} {'ratio':>6} {'bare p50':>9} {'api p50':>8} "
    print(header + f"{'added':>7} {'bare p95':>9} {'api p95':>8}  verdict")
    for level in report["levels"]:
        print(
            f"{level['concurrency']:>7} {level['calls']:>6} {level['bare_rps']:>8} {level['api_rps']:>8} "
            f"{level['throughput_ratio']:>6} {level['bare_p50_ms']:>9} {level['api_p50_ms']:>8} "
            f"{level['added_p50_ms']:>7} {level['bare_p95_ms']:>9} {level['api_p95_ms']:>8}  {level['verdict']}"
        )
    print("Targets: 1 caller: API p50 <= bare p50 + 3 ms; 20 callers: API calls/s >= 0.5x bare (others reported).")
    fusion = report["fusion"]
    print(
        f"Fusion over {fusion['sources']} sources (10/20/30 ms), sequential, no cache: "
        f"p50 {fusion['fusion_p50_ms']} ms "
        f"(p95 {fusion['fusion_p95_ms']}) against the slowest source bare p50 {fusion['slowest_source_p50_ms']} ms "
        f"(p95 {fusion['slowest_source_p95_ms']}): ratio {fusion['ratio']}, target <= {fusion['target_ms']} ms: "
        f"{fusion['verdict']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving_path", description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=lambda text: [int(p) for p in text.split(",")], default=[1, 20, 100])
    parser.add_argument("--calls", type=int, default=1200, help="calls per level and side (split over rounds)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fusion-calls", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--keep-services", action="store_true", help="keep DATABASE_URL/REDIS_URL (default: embedded SQLite)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    report = asyncio.run(run(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
