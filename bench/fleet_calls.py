"""Tool calls through the fleet API against a bare SDK `Client` on the same server, in the same run.

    .venv/bin/python -m bench.fleet_calls                      # HTTP and stdio, 1 / 10 / 50 concurrent callers
    .venv/bin/python -m bench.fleet_calls --transports http --concurrency 1,50 --rounds 5

The server is a demo exchange whose `get_quote` takes about 8 ms (`--latency-ms`), like a real tool that does some
work. Each concurrency level runs the bare client and the fleet API alternately, round by round, from the same caller
event loop (as a web request or a consumer would call): the fleet API hands every call to the fleet loop and back.
Reported per level: calls per second, p50 and p99 latency, and the ratios fleet API / bare SDK.

Targets: p50 latency at most 1.1x the bare client's, throughput at least 0.9x. Printed as PASS/FAIL, never raised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("ORCHESTRATOR_VAR_DIR", str(REPO / "var" / "bench"))
    import django

    django.setup()


@dataclass
class Level:
    transport: str
    concurrency: int
    calls: int
    bare_rps: float
    fleet_rps: float
    bare_p50_ms: float
    fleet_p50_ms: float
    bare_p99_ms: float
    fleet_p99_ms: float
    latency_ratio: float
    p99_ratio: float
    throughput_ratio: float
    verdict: str
    bare_cpu_us: float = 0.0  # client-side CPU per call, this process
    fleet_cpu_us: float = 0.0


@dataclass
class Report:
    latency_ms: float
    rounds: int
    max_concurrency: int
    levels: list[Level] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(level.verdict == "PASS" for level in self.levels)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def drive(call: Callable[[], Awaitable[Any]], concurrency: int, total: int) -> tuple[float, list[float], float]:
    """`total` calls from `concurrency` workers; returns (elapsed seconds, per-call latencies in ms, CPU seconds of
    this process: the client side's cost, whichever thread spent it)."""
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, time.process_time() - cpu


async def measure_transport(transport: str, args: argparse.Namespace, report: Report, levels: list[int]) -> None:
    from mcp import Client, StdioServerParameters

    from exchange_fleet.launcher import free_port, start_http_exchange, stop_process
    from fleet import calls as fleet_calls
    from mcp_client import ServerTarget

    knobs = ["--latency-ms", str(args.latency_ms), "--jitter-ms", "0", "--no-outages", "--tick-interval", "30"]
    process = None
    name = f"bench-{transport}"
    if transport == "http":
        port = free_port()
        process = await asyncio.to_thread(start_http_exchange, "alpha", port, *knobs, quiet=True)
        url = f"http://127.0.0.1:{port}/mcp"
        target = ServerTarget(key=name, transport="http", url=url, max_concurrency=args.max_concurrency)
        bare_server: Any = url
    else:
        argv = ["-m", "exchange_fleet", "serve", "--profile", "alpha", *knobs]
        target = ServerTarget(
            key=name,
            transport="stdio",
            command=sys.executable,
            args=tuple(argv),
            cwd=str(REPO),
            max_concurrency=args.max_concurrency,
        )
        bare_server = StdioServerParameters(command=sys.executable, args=argv, cwd=str(REPO))
    arguments = {"symbol": "BTC-USD"}
    try:
        await fleet_calls.ensure_running(target)
        await fleet_calls.fleet_runtime().arun(lambda hub: hub.wait_connected(name, 60))
        async with Client(bare_server, read_timeout_seconds=30, cache=None) as bare:

            async def bare_call() -> Any:
                return await bare.call_tool("get_quote", arguments)

            async def fleet_call() -> Any:
                return await fleet_calls.call_tool(name, "get_quote", arguments, caller="bench")

            for call in (bare_call, fleet_call):  # warm-up: output schemas fetched, pools filled
                await drive(call, 10, 100)
            for concurrency in levels:
                total = args.calls_per_caller * concurrency if concurrency > 1 else args.calls_single
                samples: dict[str, list[tuple[float, list[float], float]]] = {"bare": [], "fleet": []}
                for _ in range(args.rounds):
                    samples["bare"].append(await drive(bare_call, concurrency, total))
                    samples["fleet"].append(await drive(fleet_call, concurrency, total))
                report.levels.append(summarise(transport, concurrency, total, samples))
    finally:
        await fleet_calls.stop_running(name)
        if process is not None:
            await asyncio.to_thread(stop_process, process)


def summarise(
    transport: str, concurrency: int, total: int, samples: dict[str, list[tuple[float, list[float], float]]]
) -> Level:
    def rps(name: str) -> float:
        return statistics.median(total / elapsed for elapsed, _, _ in samples[name])

    def pct(name: str, q: float) -> float:
        return statistics.median(percentile(latencies, q) for _, latencies, _ in samples[name])

    def cpu_us(name: str) -> float:
        return statistics.median(cpu / total * 1e6 for _, _, cpu in samples[name])

    bare_rps, fleet_rps = rps("bare"), rps("fleet")
    bare_p50, fleet_p50 = pct("bare", 0.5), pct("fleet", 0.5)
    bare_p99, fleet_p99 = pct("bare", 0.99), pct("fleet", 0.99)
    latency_ratio = fleet_p50 / bare_p50
    throughput_ratio = fleet_rps / bare_rps
    verdict = "PASS" if latency_ratio <= 1.1 and throughput_ratio >= 0.9 else "FAIL"
    return Level(
        transport=transport,
        concurrency=concurrency,
        calls=total,
        bare_rps=round(bare_rps, 1),
        fleet_rps=round(fleet_rps, 1),
        bare_p50_ms=round(bare_p50, 3),
        fleet_p50_ms=round(fleet_p50, 3),
        bare_p99_ms=round(bare_p99, 3),
        fleet_p99_ms=round(fleet_p99, 3),
        latency_ratio=round(latency_ratio, 3),
        p99_ratio=round(fleet_p99 / bare_p99, 3),
        bare_cpu_us=round(cpu_us("bare"), 1),
        fleet_cpu_us=round(cpu_us("fleet"), 1),
        throughput_ratio=round(throughput_ratio, 3),
        verdict=verdict,
    )


def print_table(report: Report) -> None:
    print(
        f"Tool calls: fleet API vs bare SDK Client, same server (get_quote ~{report.latency_ms:g} ms), "
        f"{report.rounds} interleaved rounds, max_concurrency {report.max_concurrency}\n"
    )
    header = (
        f"{'transport':<9} {'callers':>7} {'bare/s':>8} {'fleet/s':>8} {'x':>6} "
        f"{'bare p50':>9} {'fleet p50':>9} {'x':>6} {'bare p99':>9} {'fleet p99':>9} {'x':>6} "
        f"{'cpu/call bare':>13} {'fleet':>7}  verdict"
    )
    print(header)
    print("-" * len(header))
    for level in report.levels:
        print(
            f"{level.transport:<9} {level.concurrency:>7} {level.bare_rps:>8.0f} {level.fleet_rps:>8.0f} "
            f"{level.throughput_ratio:>6.3f} {level.bare_p50_ms:>7.2f}ms {level.fleet_p50_ms:>7.2f}ms "
            f"{level.latency_ratio:>6.3f} {level.bare_p99_ms:>7.2f}ms {level.fleet_p99_ms:>7.2f}ms "
            f"{level.p99_ratio:>6.3f} {level.bare_cpu_us:>11.0f}us {level.fleet_cpu_us:>5.0f}us  {level.verdict}"
        )
    verdict = "PASS" if report.passed else "FAIL"
    print(f"\nRESULT: {verdict} (targets: p50 latency <= 1.1x bare, throughput >= 0.9x bare, at every level)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_calls", description=__doc__.split("\n")[0])
    parser.add_argument("--transports", default="http,stdio")
    parser.add_argument("--concurrency", default="1,10,50")
    parser.add_argument("--latency-ms", type=float, default=8.0, help="the exchange's get_quote latency")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls-single", type=int, default=200, help="calls per round with one caller")
    parser.add_argument("--calls-per-caller", type=int, default=40, help="calls per caller per round otherwise")
    parser.add_argument("--max-concurrency", type=int, default=None, help="the server's limit (default: the model's)")
    parser.add_argument("--json", action="store_true")
    return parser


async def run(args: argparse.Namespace) -> Report:
    from registry.models import Server

    if args.max_concurrency is None:
        args.max_concurrency = Server._meta.get_field("max_concurrency").default
    report = Report(latency_ms=args.latency_ms, rounds=args.rounds, max_concurrency=args.max_concurrency)
    levels = [int(part) for part in args.concurrency.split(",") if part.strip()]
    for transport in [part.strip() for part in args.transports.split(",") if part.strip()]:
        await measure_transport(transport, args, report, levels)
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_django()
    from fleet.application import stop_running

    try:
        report = asyncio.run(run(args))
    finally:
        stop_running()  # the on-demand application the calls started
    if args.json:
        print(json.dumps({**asdict(report), "passed": report.passed}, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
