"""Events delivered to real WebSocket clients: publish-to-receive latency at a steady rate, and memory over a soak.

    .venv/bin/python -m bench.pipeline_delivery                          # in-memory layer, then Redis
    .venv/bin/python -m bench.pipeline_delivery --layer memory --soak-seconds 600

Each layer runs in a process of its own: uvicorn serves the real ASGI application on 127.0.0.1 (as `serve` does),
the pipeline runs on the fleet loop, and 20 WebSocket clients (the `websockets` library, over TCP, logged in with a
session cookie) subscribe to `bench.*`. A publisher publishes 2,000 events per second (in ticks of 10 ms) through
`pipeline.running.publish`; every client records, for every event, the time from publish to receipt.
Reported: p50, p95 and p99 latency, events delivered of those expected, frames per second per client, and as the
baseline measured in the same run, the WebSocket ping round trip on the same connections under the same load (the
floor a delivery cannot beat). Target: p99 under 250 ms. With --soak-seconds, resident memory sampled every 10 s
at that rate (flat means the last quarter's average within 10% of the first quarter's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1_048_576


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")


async def clients(port: int, cookie: str, count: int) -> dict[str, Any]:
    """The browsers, in a process of their own (so their JSON parsing does not share the server's GIL)."""
    import websockets

    latencies: list[float] = []
    pings: list[float] = []
    received = [0] * count
    frames = [0] * count
    expected: dict[str, int] = {}
    measuring = asyncio.Event()
    finished = asyncio.Event()
    headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
    sockets = [
        await websockets.connect(f"ws://127.0.0.1:{port}/ws/events/", additional_headers=headers, max_size=2**24)
        for _ in range(count)
    ]
    for socket in sockets:
        await socket.send(json.dumps({"type": "subscribe", "streams": ["bench.*"]}))
        assert json.loads(await socket.recv())["type"] == "subscribed"

    async def listen(index: int, socket: Any) -> None:
        async for raw in socket:
            now = time.time()
            frame = json.loads(raw)
            if frame["type"] != "batch":
                continue
            frames[index] += 1
            for event in frame["events"]:
                if event["stream"] == "bench.control":
                    if event["kind"] == "measure":
                        measuring.set()
                    else:
                        expected.update(event["payload"])
                    continue
                received[index] += 1
                if measuring.is_set():
                    latencies.append(now - event["payload"]["t"])
            if expected and all(r >= expected["published"] for r in received):
                finished.set()

    async def ping_forever(socket: Any) -> None:
        while not finished.is_set():
            await measuring.wait()
            started = time.perf_counter()
            await (await socket.ping())
            pings.append(time.perf_counter() - started)
            await asyncio.sleep(0.25)

    listeners = [asyncio.create_task(listen(i, s)) for i, s in enumerate(sockets)]
    pingers = [asyncio.create_task(ping_forever(s)) for s in sockets[:5]]
    print("READY", flush=True)
    started = time.perf_counter()
    await finished.wait()
    elapsed = time.perf_counter() - started
    for socket in sockets:
        await socket.close()
    await asyncio.gather(*listeners, *pingers, return_exceptions=True)
    return {
        "received_min": min(received),
        "expected": expected.get("published"),
        "latency_ms": {
            "samples": len(latencies),
            "p50": round(percentile(latencies, 0.50) * 1000, 1),
            "p95": round(percentile(latencies, 0.95) * 1000, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1) if latencies else None,
        },
        "baseline_ping_ms": {
            "p50": round(percentile(pings, 0.50) * 1000, 2),
            "p99": round(percentile(pings, 0.99) * 1000, 2),
        },
        "frames_per_s_per_client": round(sum(frames) / len(frames) / elapsed, 1),
    }


def clients_process() -> int:
    port, count = int(os.environ["BENCH_PORT"]), int(os.environ["BENCH_CLIENTS"])
    result = asyncio.run(clients(port, os.environ["BENCH_COOKIE"], count))
    print("CLIENTS " + json.dumps(result), flush=True)
    return 0


def publish_load(port: int, cookie: str, args: argparse.Namespace) -> dict[str, Any]:
    """In the server process: start the browsers, publish at the rate, sample memory, collect their numbers."""
    from pipeline.running import publish

    env = {**os.environ, "BENCH_PORT": str(port), "BENCH_COOKIE": cookie, "BENCH_CLIENTS": str(args.clients)}
    browsers = subprocess.Popen(
        [sys.executable, "-m", "bench.pipeline_delivery", "--clients-process"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert browsers.stdout is not None
    assert browsers.stdout.readline().strip() == "READY"
    memory: list[tuple[float, float]] = []
    per_tick = max(1, args.rate // 100)
    total_seconds = args.seconds + args.soak_seconds
    published = 0
    started = time.perf_counter()
    next_tick, next_sample = started, started
    while time.perf_counter() - started < total_seconds:
        for _ in range(per_tick):
            publish("bench.load", "tick", {"t": time.time(), "i": published})
            published += 1
        if published == per_tick * 200:
            # The first two seconds warm up (connections, caches): latencies count from here.
            publish("bench.control", "measure", {})
        if time.perf_counter() >= next_sample:
            memory.append((round(time.perf_counter() - started, 1), round(rss_mb(), 1)))
            next_sample += 10
        next_tick += 0.01
        time.sleep(max(0.0, next_tick - time.perf_counter()))
    elapsed = time.perf_counter() - started
    publish("bench.control", "done", {"published": published})
    output, _ = browsers.communicate(timeout=120)
    lines = [line for line in output.splitlines() if line.startswith("CLIENTS ")]
    result = json.loads(lines[-1].removeprefix("CLIENTS ")) if lines else {"error": "the clients did not report"}
    first = [m for t, m in memory if t <= total_seconds / 4] or [memory[0][1]]
    last = [m for t, m in memory if t >= total_seconds * 3 / 4] or [memory[-1][1]]
    result.update(
        {
            "clients": args.clients,
            "rate_published": round(published / elapsed),
            "seconds": round(elapsed, 1),
            "delivered_fraction": round(result.get("received_min", 0) / published, 5),
            "rss_mb": {
                "samples": memory,
                "first_quarter_avg": round(statistics.mean(first), 1),
                "last_quarter_avg": round(statistics.mean(last), 1),
            },
        }
    )
    return result


def one_layer(args: argparse.Namespace) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
    os.environ["DEBUG"] = "1"
    os.environ.setdefault("ORCHESTRATOR_VAR_DIR", str(REPO / "var" / "bench"))
    if args.layer == "redis":
        os.environ["REDIS_URL"] = args.redis_url
        os.environ["PIPELINE_REDIS_PREFIX"] = f"bench-{os.getpid()}:"
    else:
        os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(username="bench-viewer", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    from exchange_fleet.launcher import free_port
    from fleet.application import FleetApplication
    from orchestrator_site.asgi import application
    from orchestrator_site.web_server import WebServer
    from pipeline.delivery import bind_delivery_loop

    port = free_port()
    outcome: dict[str, Any] = {}
    # The application as serve builds it, less the fleet: this bench publishes the events itself.
    fleet = FleetApplication(supervise=False, producers=False, recovery=False)

    def bench_thread() -> None:
        try:
            outcome.update(publish_load(port, cookie, args))
        except Exception as error:  # reported, and the server still stops
            outcome["error"] = f"{type(error).__name__}: {error}"
        finally:
            web_server.stop()

    def ready(web_loop: asyncio.AbstractEventLoop) -> None:
        bind_delivery_loop(web_loop)
        fleet.start()
        threading.Thread(target=bench_thread, name="bench", daemon=True).start()

    web_server = WebServer(application, host="127.0.0.1", port=port, on_ready=ready)
    web_server.run()
    fleet.stop()
    if args.layer == "redis":
        import redis

        connection = redis.Redis.from_url(args.redis_url)
        keys = list(connection.scan_iter(match=os.environ["PIPELINE_REDIS_PREFIX"] + "*"))
        if keys:
            connection.delete(*keys)
    outcome["layer"] = args.layer
    print("RESULT " + json.dumps(outcome), flush=True)
    return 0 if "error" not in outcome else 1


def report(result: dict[str, Any]) -> None:
    if "error" in result:
        print(f"{result['layer']}: failed: {result['error']}")
        return
    latency, ping, memory = result["latency_ms"], result["baseline_ping_ms"], result["rss_mb"]
    verdict = "PASS" if latency["p99"] < 250 else "FAIL"
    print(
        f"{result['layer']:>6}: {result['clients']} clients, {result['rate_published']:,} events/s for "
        f"{result['seconds']} s, delivered {result['delivered_fraction']:.4%}\n"
        f"        latency p50 {latency['p50']} ms  p95 {latency['p95']} ms  p99 {latency['p99']} ms  "
        f"max {latency['max']} ms   target p99 < 250 ms: {verdict}\n"
        f"        baseline (WebSocket ping on the same sockets) p50 {ping['p50']} ms  p99 {ping['p99']} ms; "
        f"p99 ratio {latency['p99'] / max(ping['p99'], 0.001):.1f}x\n"
        f"        frames/s per client {result['frames_per_s_per_client']}   resident memory first quarter "
        f"{memory['first_quarter_avg']} MB, last quarter {memory['last_quarter_avg']} MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline_delivery")
    parser.add_argument("--layer", choices=["memory", "redis", "both"], default="both")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rate", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--soak-seconds", type=float, default=0.0)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--clients-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.clients_process:
        return clients_process()
    if args.layer != "both":
        return one_layer(args)
    status = 0
    for layer in ("memory", "redis"):
        command = [sys.executable, "-m", "bench.pipeline_delivery", *(argv or sys.argv[1:]), "--layer", layer]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            print(f"{layer}: crashed (exit {done.returncode}): {done.stderr[-1500:]}")
            status = 1
            continue
        result = json.loads(lines[-1].removeprefix("RESULT "))
        print(json.dumps(result)) if args.json else report(result)
    return status


if __name__ == "__main__":
    sys.exit(main())
