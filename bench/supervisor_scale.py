"""The fleet watching hundreds of Streamable HTTP servers: the cost of a liveness check and the time it takes to
notice a death.

    .venv/bin/python -m bench.supervisor_scale                      # 4 processes x 50 exchanges = 200 servers
    .venv/bin/python -m bench.supervisor_scale --processes 5 --per-process 60 --window 30

Runs the fleet application as `manage.py serve` builds it (the supervisor keeping the sessions, health checking
them and deciding the statuses) on a scratch SQLite database in var/bench/, with the servers registered as rows.
Reports:
- CPU seconds of this process per liveness check, over a window in which the fleet only checks (everything done per
  check counts: the probe, its outcome, samples, "last seen" writes), against a bare SDK probe of the same
  servers in the same run (the same request on an open `Client`, sequentially, CPU measured the same way);
- the time from killing one server process (its N exchanges die together) until every one of them is offline in the
  registry, and the same for a single server when its notification stream is its only traffic;
- the resident memory of this process with every session open.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._scratch import setup_scratch_django

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Report:
    servers: int
    processes: int
    check_interval: float
    window_seconds: float
    checks: int = 0
    cpu_per_check_ms: float = 0.0
    bare_cpu_per_probe_ms: float = 0.0
    ratio_to_bare: float = 0.0
    checks_per_second: float = 0.0
    online_after_seconds: float = 0.0
    death_noticed_seconds: list[float] = field(default_factory=list)
    rss_mb: float = 0.0
    notes: list[str] = field(default_factory=list)


def setup_django() -> None:
    setup_scratch_django("supervisor_scale", keep_redis=True)


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait(condition: Any, timeout: float, step: float = 0.05) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError("condition not met")
        time.sleep(step)
    return time.monotonic() - started


def bare_probe_cost(urls: list[str], rounds: int) -> float:
    """CPU ms per probe of an open bare SDK Client (the layer's 2026-07-28 probe for these servers: prompts/list),
    sequential."""
    from mcp import Client

    async def run() -> float:
        clients = [Client(url, read_timeout_seconds=10, cache=None) for url in urls]
        for client in clients:
            await client.__aenter__()
        try:
            for client in clients:  # warm-up
                await client.list_prompts(cache_mode="bypass")
            started = cpu_seconds()
            for _ in range(rounds):
                for client in clients:
                    await client.list_prompts(cache_mode="bypass")
            return (cpu_seconds() - started) * 1000 / (rounds * len(clients))
        finally:
            for client in reversed(clients):
                await client.__aexit__(None, None, None)

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.supervisor_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--per-process", type=int, default=50)
    parser.add_argument("--check-interval", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=20.0, help="seconds of steady checking that are measured")
    parser.add_argument("--bare-sample", type=int, default=50, help="servers probed by the bare client")
    parser.add_argument("--profile", help="write a yappi CPU profile of the window to this file (pip install yappi)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    setup_django()
    from django.conf import settings

    from exchange_fleet.launcher import free_port, start_http_exchange_fleet, stop_process
    from fleet.application import FleetApplication
    from registry.models import Server, ServerStatus
    from registry.services import server_create

    report = Report(
        servers=args.processes * args.per_process,
        processes=args.processes,
        check_interval=args.check_interval,
        window_seconds=args.window,
    )
    fleets: list[tuple[Any, list[str]]] = []
    # As `manage.py serve` builds it, less the pipeline (its producers would subscribe to every exchange's quotes) and
    # recovery, so the window counts what checking costs; health (the decider) checks on the interval asked for.
    settings.HEALTH_CHECK_INTERVAL_SECONDS = args.check_interval
    application = FleetApplication(pipeline=False, recovery=False)
    try:
        for _ in range(args.processes):
            fleets.append(
                start_http_exchange_fleet(args.per_process, free_port(), "--tick-interval", "60", "--no-outages")
            )
        all_urls = [url for _, urls in fleets for url in urls]
        report.bare_cpu_per_probe_ms = round(bare_probe_cost(all_urls[: args.bare_sample], rounds=5), 3)
        for index, url in enumerate(all_urls):
            server_create(name=f"x{index}", transport="http", url=url, request_timeout_seconds=5)

        started = time.monotonic()
        application.start()
        total = len(all_urls)
        wait(lambda: Server.objects.filter(status=ServerStatus.ONLINE).count() == total, timeout=180, step=0.25)
        report.online_after_seconds = round(time.monotonic() - started, 2)

        # Steady state: let the first round of checks settle, then measure a window of checks.
        time.sleep(args.check_interval * 1.5)
        checks = application.hub.streams.outcomes.subscribe(name="bench-counter", maxsize=1_000_000)
        if args.profile:
            import yappi

            yappi.set_clock_type("cpu")
            yappi.start()
        cpu_before, wall_before = cpu_seconds(), time.monotonic()
        time.sleep(args.window)
        cpu_used, wall = cpu_seconds() - cpu_before, time.monotonic() - wall_before
        if args.profile:
            yappi.stop()
            yappi.get_func_stats().sort("tsub").print_all(
                out=open(args.profile, "w"),  # noqa: SIM115 - a one-off report
                columns={0: ("name", 90), 1: ("ncall", 10), 2: ("tsub", 8), 3: ("ttot", 8)},
            )
        probes = [o for o in checks.drain() if o.operation == "probe"]
        checks.close()
        report.checks = len(probes)
        report.checks_per_second = round(len(probes) / wall, 1)
        report.cpu_per_check_ms = round(cpu_used * 1000 / max(1, len(probes)), 3)
        report.ratio_to_bare = round(report.cpu_per_check_ms / report.bare_cpu_per_probe_ms, 3)
        report.rss_mb = round(rss_mb(), 1)
        if any(not o.ok for o in probes):
            report.notes.append(f"{sum(not o.ok for o in probes)} checks failed in the window")

        # Death: one whole process (its exchanges die together), then a second one.
        for victim in range(min(2, len(fleets))):
            process, urls = fleets[victim]
            names = [f"x{all_urls.index(url)}" for url in urls]
            killed = time.monotonic()
            process.kill()
            process.wait()
            wait(
                lambda names=names: (
                    Server.objects.filter(name__in=names, status=ServerStatus.OFFLINE).count() == len(names)
                ),
                timeout=60,
                step=0.02,
            )
            report.death_noticed_seconds.append(round(time.monotonic() - killed, 3))
    finally:
        application.stop()
        for process, _ in fleets:
            stop_process(process)

    if args.json:
        print(json.dumps(asdict(report), indent=2))
        return 0
    per_core_half = 500.0 / report.cpu_per_check_ms if report.cpu_per_check_ms else 0
    print(f"Fleet supervisor with {report.servers} Streamable HTTP servers ({report.processes} processes)")
    print(f"  all online after              {report.online_after_seconds:.1f} s")
    print(f"  resident memory               {report.rss_mb:.0f} MB")
    print(f"  checks in {report.window_seconds:.0f} s window        {report.checks} ({report.checks_per_second}/s)")
    print(f"  CPU per liveness check        {report.cpu_per_check_ms:.3f} ms")
    print(f"  CPU per bare SDK probe        {report.bare_cpu_per_probe_ms:.3f} ms   (ratio {report.ratio_to_bare})")
    keeps = per_core_half * report.check_interval
    print(f"  servers per half core at a {report.check_interval:g} s interval: {keeps:.0f}")
    deaths = ", ".join(f"{seconds:.2f} s" for seconds in report.death_noticed_seconds)
    print(f"  death of {args.per_process} servers noticed (all offline) after: {deaths}")
    median = statistics.median(report.death_noticed_seconds) if report.death_noticed_seconds else 0
    print(f"RESULT: death noticed in {median:.2f} s (target <= 2 s where a stream is open)")
    for note in report.notes:
        print("  note:", note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
