"""Coordinator: 50 arbitrage analyses at once over 5 exchanges against one analysis alone, and the balancer's
overhead per call against a direct fleet API call, in the same run.

    .venv/bin/python -m bench.coordinator_load
    .venv/bin/python -m bench.coordinator_load --concurrent 50 --rounds 3 --json

The exchanges are demo exchanges served from one process over Streamable HTTP (their work does not compete with
ours more than one process can), each tool taking --latency-ms. One analysis asks every exchange for a quote and an
order book per symbol at once, then analyses and stores the report (an operation row, events on the bus).

Then transactions with 3 participants (reserve on each, the decision logged, confirm on each): one at a time and
--tx-concurrency at once, committed per second (target at least 50 on SQLite).

Targets: p95 of the concurrent analyses at most 1.5x one analysis alone; 50 transactions/s. Printed as PASS/FAIL,
never raised.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench._scratch import setup_scratch_django

REPO = Path(__file__).resolve().parents[1]


def setup_django() -> None:
    setup_scratch_django("coordinator_load")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import close_old_connections

    from bench.supervisor_scale import wait
    from coordinator.arbitrage_workflow import parse_request, run_arbitrage
    from coordinator.balancer import Balancer, Candidate, call_with_failover
    from exchange_fleet.launcher import free_port, start_http_exchange_fleet, stop_process
    from fleet import calls as fleet_calls
    from fleet.application import FleetApplication
    from fleet.calls import fleet_runtime
    from mcp_client import Deadline
    from registry.models import Capability
    from registry.services import server_create

    knobs = ["--latency-ms", str(args.latency_ms), "--jitter-ms", "0", "--error-rate", "0"]
    process = None
    application = FleetApplication()  # as `manage.py serve` builds it
    if args.transport == "http":
        process, urls = start_http_exchange_fleet(args.exchanges, free_port(), *knobs, "--no-outages")
    result: dict[str, Any] = {
        "transport": args.transport,
        "exchanges": args.exchanges,
        "concurrent": args.concurrent,
        "latency_ms": args.latency_ms,
        "symbols": args.symbols,
    }
    try:
        names = [f"ex{index}" for index in range(args.exchanges)]
        for index, name in enumerate(names):
            if args.transport == "http":
                server_create(name=name, transport="http", url=urls[index], server_type="exchange", max_concurrency=64)
            else:
                argv = ["-m", "exchange_fleet", "serve", "--profile", "alpha", "--seed", str(42 + index), *knobs]
                server_create(
                    name=name,
                    transport="stdio",
                    command=sys.executable,
                    args=[*argv, "--no-outages"],
                    cwd=str(REPO),
                    server_type="exchange",
                    max_concurrency=64,
                )
        application.start()
        wait(lambda: Capability.objects.filter(name="get_order_book").count() == len(names), timeout=120, step=0.2)
        request = parse_request({"symbols": args.symbols.split(","), "size": 0.5})
        for _ in range(3):
            run_arbitrage(request, created_by="bench")

        def one() -> float:
            started = time.perf_counter()
            report = run_arbitrage(request, created_by="bench")
            assert not report["failures"], report["failures"]
            return (time.perf_counter() - started) * 1000

        alone = [one() for _ in range(args.alone_runs)]
        together: list[float] = []
        lock = threading.Lock()

        def worker(barrier: threading.Barrier) -> None:
            barrier.wait()
            try:
                elapsed = one()
                with lock:
                    together.append(elapsed)
            finally:
                close_old_connections()

        cpu = time.process_time()
        wall = time.perf_counter()
        for _ in range(args.rounds):
            barrier = threading.Barrier(args.concurrent)
            threads = [threading.Thread(target=worker, args=(barrier,)) for _ in range(args.concurrent)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        result["alone_p50_ms"] = round(statistics.median(alone), 1)
        result["alone_p95_ms"] = round(percentile(alone, 0.95), 1)
        result["concurrent_p50_ms"] = round(statistics.median(together), 1)
        result["concurrent_p95_ms"] = round(percentile(together, 0.95), 1)
        result["ratio_p95_to_alone"] = round(result["concurrent_p95_ms"] / result["alone_p95_ms"], 2)
        result["analyses_per_second"] = round(len(together) / wall, 1)
        result["cpu_ms_per_analysis"] = round(cpu * 1000 / len(together), 1)
        result["verdict"] = "PASS" if result["ratio_p95_to_alone"] <= 1.5 else "FAIL"

        async def overhead() -> dict[str, float]:
            balancer = Balancer()
            candidates = [Candidate(name, "online") for name in names]
            arguments = {"symbol": "BTC-USD"}
            direct, balanced = [], []
            direct_cpu = balanced_cpu = 0.0
            for _ in range(args.calls):
                started, cpu_started = time.perf_counter(), time.process_time()
                await fleet_calls.call_tool(names[0], "get_quote", arguments, caller="bench")
                direct.append((time.perf_counter() - started) * 1000)
                direct_cpu += time.process_time() - cpu_started
                started, cpu_started = time.perf_counter(), time.process_time()
                routed = await call_with_failover(
                    balancer, candidates, "get_quote", arguments, deadline=Deadline.within(10), caller="bench"
                )
                balanced.append((time.perf_counter() - started) * 1000)
                balanced_cpu += time.process_time() - cpu_started
                assert routed.ok, routed.error
            return {
                "direct_p50_ms": round(statistics.median(direct), 3),
                "balanced_p50_ms": round(statistics.median(balanced), 3),
                "balancer_overhead_p50_ms": round(statistics.median(balanced) - statistics.median(direct), 3),
                "direct_cpu_ms": round(direct_cpu * 1000 / args.calls, 3),
                "balanced_cpu_ms": round(balanced_cpu * 1000 / args.calls, 3),
            }

        result.update(fleet_runtime().run(overhead(), timeout=600))

        from coordinator.transactions import run_transaction

        orders = [
            {"server": names[index % len(names)], "symbol": "BTC-USD", "side": side, "quantity": 0.0001}
            for index, side in enumerate(("buy", "sell", "buy"))
        ]

        def transact() -> None:
            tx = run_transaction(orders, created_by="bench", parameters={"orders": orders})
            assert tx.state == "committed", tx.reason

        for _ in range(5):
            transact()
        started = time.perf_counter()
        for _ in range(args.transactions):
            transact()
        result["transactions_per_second_serial"] = round(args.transactions / (time.perf_counter() - started), 1)
        done = 0
        lock = threading.Lock()

        def transactor(count: int) -> None:
            nonlocal done
            try:
                for _ in range(count):
                    transact()
                    with lock:
                        done += 1
            finally:
                close_old_connections()

        started = time.perf_counter()
        threads = [
            threading.Thread(target=transactor, args=(args.transactions // args.tx_concurrency,))
            for _ in range(args.tx_concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        result["transactions_per_second_concurrent"] = round(done / (time.perf_counter() - started), 1)
        best = max(result["transactions_per_second_serial"], result["transactions_per_second_concurrent"])
        result["transactions_verdict"] = "PASS" if best >= 50 else "FAIL"
    finally:
        application.stop()
        if process is not None:
            stop_process(process)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coordinator_load", description=__doc__.split("\n")[0])
    parser.add_argument("--exchanges", type=int, default=5)
    parser.add_argument("--transport", choices=["http", "stdio"], default="http")
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--alone-runs", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--symbols", default="BTC-USD")
    parser.add_argument("--calls", type=int, default=300, help="calls for the balancer's overhead")
    parser.add_argument("--transactions", type=int, default=200)
    parser.add_argument("--tx-concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    setup_django()
    result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"Arbitrage analyses: {result['exchanges']} exchanges over {result['transport']} "
        f"(tools {result['latency_ms']:g} ms), "
        f"symbols {result['symbols']}\n"
    )
    print(f"  one alone           p50 {result['alone_p50_ms']:>8.1f} ms   p95 {result['alone_p95_ms']:>8.1f} ms")
    print(
        f"  {result['concurrent']} at once        p50 {result['concurrent_p50_ms']:>8.1f} ms   "
        f"p95 {result['concurrent_p95_ms']:>8.1f} ms   ratio p95 {result['ratio_p95_to_alone']:.2f}  "
        f"(target <= 1.5)  {result['verdict']}"
    )
    print(
        f"  throughput          {result['analyses_per_second']:>8.1f} analyses/s, "
        f"{result['cpu_ms_per_analysis']:.1f} ms CPU each"
    )
    print(
        f"  balancer overhead   p50 {result['balancer_overhead_p50_ms']:>8.3f} ms per call "
        f"(direct {result['direct_p50_ms']:.3f} ms, balanced {result['balanced_p50_ms']:.3f} ms; "
        f"CPU {result['direct_cpu_ms']:.3f} vs {result['balanced_cpu_ms']:.3f} ms)"
    )
    print(
        f"  transactions (3 participants)  {result['transactions_per_second_serial']:.1f}/s one at a time, "
        f"{result['transactions_per_second_concurrent']:.1f}/s {args.tx_concurrency} at once  (target >= 50)  "
        f"{result['transactions_verdict']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
