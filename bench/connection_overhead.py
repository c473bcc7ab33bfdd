"""Overhead of the MCP connection layer over a bare SDK `Client`, on the same server, in one run.

    .venv/bin/python -m bench.connection_overhead                 # table
    .venv/bin/python -m bench.connection_overhead --json          # machine-readable
    .venv/bin/python -m bench.connection_overhead \\
        --server-command "python -m exchange_fleet serve --profile alpha --transport stdio" \\
        --http-command "python -m exchange_fleet serve --profile alpha --transport streamable-http --port {port}" \\
        --sse-command "" --tool get_ticker --arguments '{"symbol": "BTC-USD"}'

Measures:
- session open time per transport (stdio spawn + handshake; Streamable HTTP and SSE handshake against a
  running server), median of a few, through `open_client` (the layer's own client construction);
- full discovery time (all listings, all pages) through the hub;
- per-call `tools/call` latency: bare SDK Client vs the layer, interleaved round by round so machine drift
  hits both alike, for stdio and HTTP, through the hub on its own loop and through `FleetRuntime.arun()`
  (from another loop) and `FleetRuntime.run()` (from a plain thread) — the paths web code uses. For stdio a
  bare Client necessarily has its own server process, so one more row compares the hub with bare calls on
  the hub's own session (same process), which isolates the layer's cost from process-to-process noise.

The verdict is PASS when the layer's median per-call time is within --target-ratio (1.2) of the bare
client's. The exit status is 0 either way; FAIL is printed, not raised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from exchange_fleet.launcher import free_port, stop_process, wait_for_port
from mcp_client import (
    CallOutcome,
    ConnectionHub,
    FleetRuntime,
    ServerTarget,
    Subscription,
    open_client,
)

REPO = Path(__file__).resolve().parents[1]
ECHO_SERVER = REPO / "tests" / "mcp_servers" / "well_behaved.py"
DEFAULT_STDIO = f"{sys.executable} {ECHO_SERVER}"
DEFAULT_HTTP = f"{sys.executable} {ECHO_SERVER} streamable-http --port {{port}}"
DEFAULT_SSE = f"{sys.executable} {ECHO_SERVER} sse --port {{port}}"


@dataclass
class PathResult:
    transport: str
    path: str  # "hub", "hub (same session)", "runtime.arun", "runtime.run"
    bare_ms: float  # median over rounds of the per-call mean
    layer_ms: float
    ratio: float
    overhead_us: float
    verdict: str
    bare_rounds: list[float] = field(default_factory=list)
    layer_rounds: list[float] = field(default_factory=list)


@dataclass
class Report:
    server_command: str
    tool: str
    rounds: int
    calls: int
    target_ratio: float
    open_ms: dict[str, float] = field(default_factory=dict)
    discovery_ms: dict[str, float] = field(default_factory=dict)
    discovered: dict[str, dict[str, int]] = field(default_factory=dict)
    per_call: list[PathResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    funnel: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(result.verdict == "PASS" for result in self.per_call)


# -- servers ----------------------------------------------------------------------------------------------


class NetworkServer:
    """An HTTP/SSE server subprocess on a free port (the command gets {port} substituted)."""

    def __init__(self, command: str) -> None:
        self.port = free_port()
        self.argv = shlex.split(command.replace("{port}", str(self.port)))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PORT": str(self.port)}  # for servers that read the port from the environment
        self.proc = subprocess.Popen(
            self.argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            wait_for_port(self.port, self.proc, timeout)
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"{error}: {' '.join(self.argv)}") from None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


# -- measurements -------------------------------------------------------------------------------------------


async def drain(subscription: Subscription[CallOutcome]) -> None:
    kept: deque[CallOutcome] = deque(maxlen=10_000)
    async for outcome in subscription:
        kept.append(outcome)


async def drain_forever_on(hub: ConnectionHub) -> None:
    await drain(hub.streams.outcomes.subscribe(name="bench"))


def stdio_target(key: str, command: str, timeout: float) -> ServerTarget:
    argv = shlex.split(command)
    return ServerTarget(
        key=key,
        transport="stdio",
        command=argv[0],
        args=tuple(argv[1:]),
        cwd=str(REPO),
        request_timeout=timeout,
        connect_timeout=60,
    )


def bare_client(target: ServerTarget) -> Client:
    """The baseline: the SDK Client as its docs show it, with only a read timeout and no cache."""
    if target.transport == "stdio":
        server: Any = StdioServerParameters(
            command=target.command, args=list(target.args), cwd=target.cwd, env=target.stdio_environment()
        )
    else:
        server = target.url
    return Client(server, read_timeout_seconds=target.request_timeout, cache=None)


async def median_open_ms(target: ServerTarget, samples: int) -> float:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        async with open_client(target):
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def time_calls(call: Callable[[], Awaitable[Any]], count: int) -> float:
    """Mean milliseconds per call over `count` sequential calls."""
    started = time.perf_counter()
    for _ in range(count):
        await call()
    return (time.perf_counter() - started) * 1000 / count


def time_sync_calls(call: Callable[[], Any], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) * 1000 / count


async def compare(
    transport: str,
    target: ServerTarget,
    tool: str,
    arguments: dict[str, Any],
    rounds: int,
    calls: int,
    target_ratio: float,
) -> tuple[list[PathResult], float, dict[str, int]]:
    """Bare client vs hub vs runtime.arun vs runtime.run, interleaved per round. Also times discovery."""
    # Each hub has a subscriber draining its outcome stream, as the call recorder does in the application.
    hub = ConnectionHub()
    runtime = FleetRuntime(ConnectionHub()).start()
    drains = [asyncio.create_task(drain(hub.streams.outcomes.subscribe(name="bench")))]
    drains.append(asyncio.ensure_future(runtime.arun(lambda h: drain_forever_on(h))))
    try:
        hub_target = target
        runtime_target = replace(target, key=target.key + "-rt")
        await hub.ensure(hub_target)
        await runtime.arun(runtime.hub.ensure(runtime_target))
        await hub.wait_connected(hub_target.key, 60)
        await runtime.arun(runtime.hub.wait_connected(runtime_target.key, 60))

        discovery = []
        for _ in range(5):
            started = time.perf_counter()
            caps = (await hub.discover(hub_target.key)).result
            discovery.append((time.perf_counter() - started) * 1000)
        counts = {
            "tools": len(caps.tools),
            "resources": len(caps.resources),
            "resource_templates": len(caps.resource_templates),
            "prompts": len(caps.prompts),
        }

        async with bare_client(target) as bare:

            async def bare_call() -> Any:
                return await bare.call_tool(tool, arguments)

            async def hub_call() -> Any:
                return await hub.call_tool(hub_target.key, tool, arguments)

            connection = hub.get(hub_target.key)
            assert connection is not None
            session_client = connection._client  # the layer's own Client, used bare: same process, same session
            assert session_client is not None

            async def session_bare_call() -> Any:
                return await session_client.call_tool(tool, arguments)

            async def arun_call() -> Any:
                return await runtime.arun(runtime.hub.call_tool(runtime_target.key, tool, arguments))

            def run_call() -> Any:
                return runtime.run(runtime.hub.call_tool(runtime_target.key, tool, arguments))

            # Warm-up: the first tools/call lists tools (output schemas), JITs nothing, fills pools.
            for fn in (bare_call, hub_call, arun_call):
                await time_calls(fn, 20)
            await asyncio.to_thread(time_sync_calls, run_call, 20)

            samples: dict[str, list[float]] = {
                "bare": [],
                "hub": [],
                "session-bare": [],
                "runtime.arun": [],
                "runtime.run": [],
            }
            for _ in range(rounds):
                samples["bare"].append(await time_calls(bare_call, calls))
                samples["hub"].append(await time_calls(hub_call, calls))
                samples["session-bare"].append(await time_calls(session_bare_call, calls))
                samples["runtime.arun"].append(await time_calls(arun_call, calls))
                samples["runtime.run"].append(await asyncio.to_thread(time_sync_calls, run_call, calls))
    finally:
        for task in drains:
            task.cancel()
        await hub.close_all()
        await asyncio.to_thread(runtime.shutdown)

    results = []
    # (row name, layer samples, baseline samples). "hub (same session)" isolates the layer's own cost: the
    # baseline is the bare SDK call on the very Client the hub uses, so server-process noise cancels out.
    rows = [
        ("hub", "hub", "bare"),
        ("hub (same session)", "hub", "session-bare"),
        ("runtime.arun", "runtime.arun", "bare"),
        ("runtime.run", "runtime.run", "bare"),
    ]
    for name, path, baseline in rows:
        bare_median = statistics.median(samples[baseline])
        layer_median = statistics.median(samples[path])
        ratio = layer_median / bare_median
        results.append(
            PathResult(
                transport=transport,
                path=name,
                bare_ms=round(bare_median, 4),
                layer_ms=round(layer_median, 4),
                ratio=round(ratio, 4),
                overhead_us=round((layer_median - bare_median) * 1000, 1),
                verdict="PASS" if ratio <= target_ratio else "FAIL",
                bare_rounds=[round(x, 4) for x in samples[baseline]],
                layer_rounds=[round(x, 4) for x in samples[path]],
            )
        )
    return results, statistics.median(discovery), counts


async def funnel_comparison(
    target: ServerTarget, tool: str, arguments: dict[str, Any], rounds: int, calls: int
) -> dict:
    """The design measurement behind the layer: on ONE session, a caller awaiting the client directly vs
    sending each call as a work item through a queue to the task that owns the client (which spawns a task
    per item so calls can overlap). Same server process, same client, interleaved rounds."""
    queue: asyncio.Queue[tuple[Callable[[], Awaitable[Any]], asyncio.Future[Any]]] = asyncio.Queue()
    ready = asyncio.Event()
    stop = asyncio.Event()
    holder: dict[str, Client] = {}

    async def owner() -> None:
        async with bare_client(target) as client:
            holder["client"] = client
            ready.set()

            async def serve(fn: Callable[[], Awaitable[Any]], future: asyncio.Future[Any]) -> None:
                try:
                    result = await fn()
                except Exception as exc:
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(result)

            async with asyncio.TaskGroup() as group:
                stopper = group.create_task(stop.wait())
                while not stop.is_set():
                    getter = group.create_task(queue.get())
                    await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        break
                    fn, future = getter.result()
                    group.create_task(serve(fn, future))

    owner_task = asyncio.create_task(owner())
    await ready.wait()
    client = holder["client"]

    async def direct() -> Any:
        return await client.call_tool(tool, arguments)

    async def queued() -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queue.put_nowait((direct, future))
        return await future

    try:
        await time_calls(direct, 20)
        await time_calls(queued, 20)
        samples: dict[str, list[float]] = {"direct": [], "queued": []}
        for _ in range(rounds):
            samples["direct"].append(await time_calls(direct, calls))
            samples["queued"].append(await time_calls(queued, calls))
    finally:
        stop.set()
        await owner_task
    direct_ms = statistics.median(samples["direct"])
    queued_ms = statistics.median(samples["queued"])
    return {
        "direct_ms": round(direct_ms, 4),
        "queued_ms": round(queued_ms, 4),
        "queue_cost_us": round((queued_ms - direct_ms) * 1000, 1),
        "direct_rounds": [round(x, 4) for x in samples["direct"]],
        "queued_rounds": [round(x, 4) for x in samples["queued"]],
    }


async def run(args: argparse.Namespace) -> Report:
    arguments = json.loads(args.arguments)
    report = Report(
        server_command=args.server_command,
        tool=args.tool,
        rounds=args.rounds,
        calls=args.calls,
        target_ratio=args.target_ratio,
    )
    stdio = stdio_target("bench-stdio", args.server_command, args.request_timeout)
    report.open_ms["stdio"] = round(await median_open_ms(stdio, args.open_samples), 2)

    servers: list[NetworkServer] = []
    timeout = args.request_timeout
    try:
        http_target = sse_target = None
        if args.http_command:
            http = NetworkServer(args.http_command)
            servers.append(http)
            await asyncio.to_thread(http.start)
            url = f"http://127.0.0.1:{http.port}/mcp"
            http_target = ServerTarget(key="bench-http", transport="http", url=url, request_timeout=timeout)
            report.open_ms["http"] = round(await median_open_ms(http_target, args.open_samples), 2)
        else:
            report.skipped["http"] = "no --http-command"
        if args.sse_command:
            sse = NetworkServer(args.sse_command)
            servers.append(sse)
            await asyncio.to_thread(sse.start)
            url = f"http://127.0.0.1:{sse.port}/sse"
            sse_target = ServerTarget(key="bench-sse", transport="sse", url=url, request_timeout=timeout)
            report.open_ms["sse"] = round(await median_open_ms(sse_target, args.open_samples), 2)
        else:
            report.skipped["sse"] = "no --sse-command"

        for transport, target in (("stdio", stdio), ("http", http_target)):
            if target is None or transport not in args.compare:
                continue
            results, discovery_ms, counts = await compare(
                transport, target, args.tool, arguments, args.rounds, args.calls, args.target_ratio
            )
            report.per_call.extend(results)
            report.discovery_ms[transport] = round(discovery_ms, 2)
            report.discovered[transport] = counts
        if args.funnel:
            report.funnel = await funnel_comparison(stdio, args.tool, arguments, args.rounds, args.calls)
    finally:
        for server in servers:
            server.stop()
    return report


def print_table(report: Report) -> None:
    print(f"MCP connection layer overhead — server: {report.server_command}")
    print(f"tool {report.tool!r}, {report.rounds} rounds x {report.calls} calls per path, interleaved\n")
    opens = "   ".join(f"{name} {ms:.1f} ms" for name, ms in report.open_ms.items())
    print(f"Session open (median):   {opens}")
    for transport, ms in report.discovery_ms.items():
        counts = report.discovered[transport]
        summary = ", ".join(f"{n} {what}" for what, n in counts.items())
        print(f"Discovery {transport:<6} (median of 5): {ms:.1f} ms ({summary})")
    for name, why in report.skipped.items():
        print(f"Skipped {name}: {why}")
    print()
    header = f"{'transport':<9} {'path':<18} {'bare SDK':>10} {'layer':>10} {'ratio':>7} {'overhead':>10}  verdict"
    print(header)
    print("-" * len(header))
    for r in report.per_call:
        print(
            f"{r.transport:<9} {r.path:<18} {r.bare_ms:>7.3f} ms {r.layer_ms:>7.3f} ms {r.ratio:>7.3f} "
            f"{r.overhead_us:>+7.0f} us  {r.verdict} (target <= {report.target_ratio})"
        )
    if report.funnel:
        f = report.funnel
        print(
            f"\nFunnel design check (stdio, one session): direct await {f['direct_ms']:.3f} ms/call, "
            f"queue to owner task {f['queued_ms']:.3f} ms/call ({f['queue_cost_us']:+.0f} us per call)"
        )
    print()
    if not report.per_call:
        print("RESULT: no per-call comparison was run")
        return
    verdict = "PASS" if report.passed else "FAIL"
    print(f"RESULT: {verdict} (target: every path within {report.target_ratio}x of the bare SDK call)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.connection_overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--server-command", default=DEFAULT_STDIO, help="stdio server command line")
    parser.add_argument("--http-command", default=DEFAULT_HTTP, help="Streamable HTTP server command ({port}); ''=skip")
    parser.add_argument("--sse-command", default=DEFAULT_SSE, help="SSE server command ({port}); '' to skip")
    parser.add_argument("--tool", default="echo")
    parser.add_argument("--arguments", default='{"text": "ping"}', help="tool arguments as JSON")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300, help="calls per path per round")
    parser.add_argument("--open-samples", type=int, default=3)
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--target-ratio", type=float, default=1.2)
    parser.add_argument(
        "--compare",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=["stdio", "http"],
        help="transports for the per-call comparison (default: stdio,http)",
    )
    parser.add_argument(
        "--funnel", action="store_true", help="also measure direct await vs a queue to the owner task (design check)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = asyncio.run(run(args))
    if args.json:
        data = asdict(report)
        data["passed"] = report.passed
        print(json.dumps(data, indent=2))
    else:
        print_table(report)
    return 0  # FAIL is reported, not turned into an exit status


if __name__ == "__main__":
    sys.exit(main())
