"""The health monitor at scale: CPU per check over 1,000 Streamable HTTP servers, and the health API's query time
with 30 days of history for 100 servers.

    .venv/bin/python -m bench.health_sweep                              # 4 processes x 250 exchanges
    .venv/bin/python -m bench.health_sweep --processes 2 --per-process 100 --interval 2 --skip-query

1. The real supervisor and health monitor (as `manage.py serve` runs them) on a scratch SQLite database, every
   server checked every `--interval` seconds (the era's liveness probe; its sample written in batches). Measured over
   a window of steady checking: checks per second and CPU seconds of this process per check, against a bare SDK
   probe of the same servers in the same run (an open `Client`, the same request, sequential). Target: at most 1.2x
   the bare cost. Reported: how many servers one worker keeps on a 10 s interval with at most half a core.
2. `GET /api/health/`'s work (every server's availability 24h/7d/30d, latency, success, trend and prediction) over
   100 servers with 30 days of hour rollups, 7 days of minute rollups and an hour of raw samples. Target: p95 under
   200 ms.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench._scratch import setup_scratch_django

REPO = Path(__file__).resolve().parents[1]


def setup_django() -> None:
    setup_scratch_django("health_sweep", keep_redis=True)


def watch_full_collections() -> list[float]:
    """The durations (ms) of the interpreter's full garbage collections from now on: each one stops every thread."""
    durations: list[float] = []
    began = [0.0]

    def note(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                began[0] = time.perf_counter()
            else:
                durations.append((time.perf_counter() - began[0]) * 1000)

    gc.callbacks.append(note)
    return durations


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    from bench.supervisor_scale import bare_probe_cost, cpu_seconds, rss_mb, wait
    from exchange_fleet.launcher import free_port, start_http_exchange_fleet, stop_process
    from fleet.application import FleetApplication
    from orchestrator_site.garbage_collection import tune_for_fleet
    from registry.models import Server, ServerStatus, StatusChange
    from registry.services import server_create

    fleets: list[tuple[Any, list[str]]] = []
    # As `manage.py serve` builds it, less the pipeline (its producers would subscribe to every exchange's quotes) and
    # recovery: the window counts what checking costs, as this bench always has.
    application = FleetApplication(pipeline=False, recovery=False)
    result: dict[str, Any] = {"servers": args.processes * args.per_process, "interval_seconds": args.interval}
    try:
        for _ in range(args.processes):
            fleets.append(
                start_http_exchange_fleet(args.per_process, free_port(), "--tick-interval", "60", "--no-outages")
            )
        urls = [url for _, found in fleets for url in found]
        # The bare probe cycles through the same servers: with a thousand sessions in one process every probe costs
        # more than with a hundred (measured here: about twice), so a smaller sample would flatter the baseline.
        bare_urls = urls[: args.bare_sample] if args.bare_sample else urls
        bare_rounds = max(2, 1_000 // len(bare_urls))
        bare_before = bare_probe_cost(bare_urls, rounds=bare_rounds)
        for index, url in enumerate(urls):
            server_create(
                name=f"h{index}",
                transport="http",
                url=url,
                request_timeout_seconds=5,
                metadata={"health": {"interval_seconds": args.interval}},
            )
        tune_for_fleet()  # as `manage.py serve` does
        started = time.monotonic()
        application.start()
        monitor = application.monitor
        assert monitor is not None
        online = Server.objects.filter(status=ServerStatus.ONLINE)
        wait(lambda: online.count() == len(urls), timeout=args.online_timeout, step=0.5)
        result["online_after_seconds"] = round(time.monotonic() - started, 1)
        # Steady state: the start-up's connects, discoveries and first checks are over (a round of checks with
        # every server still online), so the window measures checking, not starting.
        settled = monitor.checks_done + len(urls)
        wait(lambda: monitor.checks_done >= settled, timeout=args.interval * 5, step=0.2)
        result["online_at_window_start"] = online.count()
        changes_before = StatusChange.objects.count()
        full_collections = watch_full_collections()
        if args.profile:
            import yappi

            yappi.set_clock_type("cpu")
            yappi.start()
        checks_before, cpu_before, wall_before = monitor.checks_done, cpu_seconds(), time.monotonic()
        time.sleep(args.window)
        if args.profile:
            yappi.stop()
            yappi.get_func_stats().sort("tsub").print_all(
                out=open(args.profile, "w"),  # noqa: SIM115 - a one-off report
                columns={0: ("name", 90), 1: ("ncall", 10), 2: ("tsub", 8), 3: ("ttot", 8)},
            )
        checks = monitor.checks_done - checks_before
        cpu_used, wall = cpu_seconds() - cpu_before, time.monotonic() - wall_before
        result["status_changes_in_window"] = StatusChange.objects.count() - changes_before
        result["online_at_window_end"] = online.count()
        result["full_collections_in_window"] = [round(ms) for ms in full_collections]
        gc.callbacks.clear()
        application.stop()
        # The bare probe again, now that the servers are warm and steady too: the baseline is the mean of both.
        bare_after = bare_probe_cost(bare_urls, rounds=bare_rounds)
        result["bare_cpu_per_probe_ms"] = round((bare_before + bare_after) / 2, 3)
        result["bare_before_after_ms"] = [round(bare_before, 3), round(bare_after, 3)]
        result["checks"] = checks
        result["checks_per_second"] = round(checks / wall, 1)
        result["cpu_per_check_ms"] = round(cpu_used * 1000 / max(1, checks), 3)
        result["ratio_to_bare"] = round(result["cpu_per_check_ms"] / result["bare_cpu_per_probe_ms"], 3)
        result["servers_per_half_core_at_10s"] = round(0.5 / (result["cpu_per_check_ms"] / 1000) * 10)
        result["rss_mb"] = round(rss_mb(), 1)
        result["samples_dropped"] = monitor.dropped_samples
    finally:
        application.stop()
        for process, _ in fleets:
            stop_process(process)
    return result


def query(args: argparse.Namespace) -> dict[str, Any]:
    from django.utils import timezone

    from health.models import HealthRollup, HealthSample, Resolution
    from health.rollups import floor_hour, floor_minute
    from health.selectors import fleet_health
    from registry.models import Server

    Server.objects.all().delete()
    rng = random.Random(1)
    now = timezone.now()
    servers = [Server.objects.create(name=f"q{i}", transport="http", url=f"http://127.0.0.1:9/{i}") for i in range(100)]
    started = time.perf_counter()

    def bucket(server: Server, resolution: str, start: Any, checks: int) -> HealthRollup:
        ok = checks - (1 if rng.random() < 0.05 else 0)
        return HealthRollup(
            server=server,
            resolution=resolution,
            start=start,
            checks=checks,
            ok=ok,
            calls=checks,
            calls_ok=ok,
            latency_p50_ms=10 + rng.random() * 5,
            latency_p95_ms=20 + rng.random() * 10,
            latency_p99_ms=40 + rng.random() * 20,
            latency_max_ms=80.0,
            latency_sum_ms=12.0 * checks,
            latency_count=ok,
        )

    last_hour = floor_hour(now)
    for server in servers:
        hours = [bucket(server, Resolution.HOUR, last_hour - timedelta(hours=h + 1), 360) for h in range(30 * 24)]
        last_minute = floor_minute(now)
        minutes = [
            bucket(server, Resolution.MINUTE, last_minute - timedelta(minutes=m + 1), 6) for m in range(7 * 1440)
        ]
        HealthRollup.objects.bulk_create(hours + minutes, batch_size=5_000)
        HealthSample.objects.bulk_create(
            [
                HealthSample(
                    server=server,
                    at=now - timedelta(seconds=10 * i),
                    kind="probe",
                    ok=True,
                    latency_ms=10 + rng.random() * 5 + i * 0.001,
                )
                for i in range(360)
            ],
            batch_size=5_000,
        )
    filled = time.perf_counter() - started
    timings = []
    for _ in range(args.query_runs):
        began = time.perf_counter()
        rows = fleet_health()
        timings.append((time.perf_counter() - began) * 1000)
    assert len(rows) == 100 and rows[0]["availability"]["30d"] is not None
    cold = timings[0]  # the first: an empty cache for the settled 7- and 30-day sums
    timings.sort()
    return {
        "servers": 100,
        "rollup_rows": HealthRollup.objects.count(),
        "raw_samples": HealthSample.objects.count(),
        "fill_seconds": round(filled, 1),
        "cold_ms": round(cold, 1),
        "p50_ms": round(statistics.median(timings), 1),
        "p95_ms": round(timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.health_sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--per-process", type=int, default=250)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--online-timeout", type=float, default=600.0, help="seconds allowed for all to come online")
    parser.add_argument("--bare-sample", type=int, default=0, help="servers the bare probe cycles through (0: all)")
    parser.add_argument("--query-runs", type=int, default=20)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-query", action="store_true")
    parser.add_argument("--profile", help="write a yappi CPU profile of the window to this file (pip install yappi)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    setup_django()
    report: dict[str, Any] = {}
    if not args.skip_sweep:
        report["sweep"] = sweep(args)
    if not args.skip_query:
        report["query"] = query(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if "sweep" in report:
        s = report["sweep"]
        verdict = "PASS" if s["ratio_to_bare"] <= 1.2 else "FAIL"
        print(f"Health monitor sweeping {s['servers']} Streamable HTTP servers every {s['interval_seconds']:g} s")
        print(f"  all online after {s['online_after_seconds']} s; resident memory {s['rss_mb']:.0f} MB")
        print(
            f"  {s['checks']} checks in the window ({s['checks_per_second']}/s), "
            f"{s['status_changes_in_window']} status changes, {s['samples_dropped']} samples dropped; online at its "
            f"start and end: {s['online_at_window_start']} and {s['online_at_window_end']}; full garbage "
            f"collections (ms): {s['full_collections_in_window'] or 'none'}"
        )
        print(
            f"  CPU per check {s['cpu_per_check_ms']:.3f} ms vs bare SDK probe {s['bare_cpu_per_probe_ms']:.3f} ms: "
            f"ratio {s['ratio_to_bare']} (target <= 1.2: {verdict}); bare before and after the sweep: "
            f"{s['bare_before_after_ms'][0]:.3f} and {s['bare_before_after_ms'][1]:.3f} ms"
        )
        print(
            f"  servers one worker keeps on a 10 s interval with half a core: {s['servers_per_half_core_at_10s']} "
            "(target 2,500)"
        )
    if "query" in report:
        q = report["query"]
        verdict = "PASS" if q["p95_ms"] < 200 else "FAIL"
        print(f"Health API over {q['servers']} servers, {q['rollup_rows']:,} rollups, {q['raw_samples']:,} raw samples")
        print(
            f"  query p50 {q['p50_ms']} ms, p95 {q['p95_ms']} ms (target p95 < 200 ms: {verdict}); "
            f"the first, with nothing cached: {q['cold_ms']} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
