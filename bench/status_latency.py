"""A status change from a failed check to a browser: from the failing check's answer to `fleet.status` on a socket.

    .venv/bin/python -m bench.status_latency                   # 30 outages of one exchange
    .venv/bin/python -m bench.status_latency --outages 50 --json

What runs, all on 127.0.0.1:
- the orchestrator: `manage.py serve` as its own process, as an operator starts it (a scratch SQLite database in
  var/bench/status_latency, DEBUG off, the in-memory channel layer);
- an idle fleet: `--exchanges` demo exchanges over Streamable HTTP, registered through the REST API, each checked by
  health every `--interval` seconds with `retries` 0 and `recover_after` 1 in its `metadata.health`, so that one
  failing check decides "offline" and one good check "online" (the damping's retry budget is policy: it only
  chooses which check decides, not how long the news takes after it);
- the victim, one of them, has a recurring outage window (`--outage-period`, `--outage-seconds`): inside it every
  liveness probe (a list request on the 2026 era) fails with -32603 while the session stays up;
- a browser: a WebSocket client (the `websockets` library over TCP, logged in with a session cookie) on
  /ws/events/, subscribed to `fleet.status` and `health.checks`.

Measured, per outage, from the moment the deciding check's answer arrived in the orchestrator to the receipt of
the `fleet.status` event that says the victim is offline. The answer's moment is the connection layer's own record
of that request (its `CallRecord`: `started_at` + `latency_ms`, caller "health", written by the call recorder),
the same wall clock as the socket's receipt time (one machine). Each delay is split at the event's publish time
(`at` in the frame): answer -> publish (the monitor's verdict, the status write with its history, the hop to the
bus) and publish -> socket (bus, forwarder, history, channel layer, consumer, TCP).
Baseline, in the same run on the same socket: publish -> socket of the `health.checks` events the monitor
publishes straight into the bus after every check (the raw bus-to-browser delivery), and the WebSocket ping
round trip (the floor no delivery beats).
Target (issue "one home for the runtime ..."): p99 under 100 ms on an idle fleet. Printed as PASS/FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCRATCH = REPO / "var" / "bench" / "status_latency"
TARGET_P99_MS = 100.0
VICTIM = "bench-victim"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))] if ordered else float("nan")


def summary(values_seconds: list[float]) -> dict[str, Any]:
    values = [v * 1000 for v in values_seconds]
    return {
        "samples": len(values),
        "p50": round(percentile(values, 0.50), 2),
        "p95": round(percentile(values, 0.95), 2),
        "p99": round(percentile(values, 0.99), 2),
        "max": round(max(values), 2) if values else None,
    }


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass
class Observed:
    """What the browser saw: status changes of the victim, routine check events, ping round trips."""

    offline: list[tuple[float, float, str]] = field(default_factory=list)  # (publish at, received at, reason)
    recoveries: int = 0
    check_delivery: list[float] = field(default_factory=list)
    pings: list[float] = field(default_factory=list)


def scratch_environment() -> dict[str, str]:
    """This process and `serve` share one scratch database (the session and the token are made here)."""
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    env.update(
        ORCHESTRATOR_VAR_DIR=str(SCRATCH),
        DEBUG="0",
        SECRET_KEY="bench-only-" + "x" * 50,
        DJANGO_SETTINGS_MODULE="orchestrator_site.settings",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
    )
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ.update(env)
    return env


def prepare_django() -> tuple[str, str]:
    """Migrate the scratch database; a session cookie for the browser and a token for the API."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user = User.objects.create_superuser("bench-admin", "bench@example.invalid", "bench-status-latency")
    browser = Client()
    browser.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    token, _ = Token.objects.get_or_create(user=user)
    return cookie, token.key


def failing_check_answers(server: str) -> list[tuple[float, str]]:
    """When each failing health check of `server` was answered, and its error, from the connection layer's records."""
    from registry.models import CallRecord

    rows = CallRecord.objects.filter(server__name=server, caller="health", ok=False).values_list(
        "started_at", "latency_ms", "error_message"
    )
    return sorted((started.timestamp() + latency / 1000, error) for started, latency, error in rows)


async def register(base: str, token: str, name: str, url: str, interval: float) -> None:
    import httpx2

    body = {
        "name": name,
        "transport": "http",
        "url": url,
        "server_type": "bench-status",
        "metadata": {"health": {"interval_seconds": interval, "retries": 0, "recover_after": 1}},
    }
    async with httpx2.AsyncClient(base_url=base, timeout=30, headers={"Authorization": f"Token {token}"}) as api:
        answer = await api.post("/api/servers/", json=body)
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"registering {name}: {answer.status_code} {answer.text[:300]}")


async def browse(port: int, cookie: str, args: argparse.Namespace, observed: Observed) -> None:
    """The browser: follow the victim's status until `args.outages` offline changes arrived (or time ran out)."""
    import websockets

    headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/events/", additional_headers=headers) as socket:
        await socket.send(json.dumps({"type": "subscribe", "streams": ["fleet.status", "health.checks"]}))
        last_status: dict[str, str] = {}
        done = asyncio.Event()

        async def listen() -> None:
            async for raw in socket:
                received = time.time()
                frame = json.loads(raw)
                if frame.get("type") != "batch":
                    continue
                for event in frame["events"]:
                    published = epoch(event["at"])
                    if event["stream"] == "health.checks":
                        observed.check_delivery.append(received - published)
                        continue
                    payload = event["payload"]
                    server, status = payload.get("server"), payload.get("status")
                    before = last_status.get(server)
                    last_status[server] = status
                    if server != VICTIM or status == before:
                        continue
                    if status == "offline" and before == "online":
                        observed.offline.append((published, received, payload.get("status_reason", "")))
                        if len(observed.offline) >= args.outages:
                            done.set()
                    elif status == "online" and before == "offline":
                        observed.recoveries += 1

        async def ping_forever() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await (await socket.ping())
                observed.pings.append(time.perf_counter() - started)
                await asyncio.sleep(0.5)

        tasks = [asyncio.create_task(listen()), asyncio.create_task(ping_forever())]
        try:
            await asyncio.wait_for(done.wait(), args.outages * args.outage_period * 2 + 60)
        except TimeoutError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def deciding_answer(published: float, reason: str, answers: list[tuple[float, str]], window: float) -> float | None:
    """When the check that decided a change was answered: the latest failing check answered less than `window`
    before the change was published whose error the change's reason quotes. The window (the victim's up time
    between two outages) keeps an identical error of the previous outage from standing in for one not yet written.
    """
    for answered, error in reversed(answers):
        if answered <= published and error and error in reason:
            return answered if published - answered < window else None
    return None


async def wait_for_records(observed: Observed, window: float, within: float) -> list[tuple[float, str]]:
    """The call recorder writes in batches: wait until every measured change's deciding check is on record."""
    deadline = time.monotonic() + within
    while True:
        answers = await asyncio.to_thread(failing_check_answers, VICTIM)
        complete = all(
            deciding_answer(published, reason, answers, window) is not None for published, _, reason in observed.offline
        )
        if complete or time.monotonic() > deadline:
            return answers
        await asyncio.sleep(0.5)


def match(
    observed: Observed, answers: list[tuple[float, str]], window: float
) -> tuple[list[float], list[float], list[float], int]:
    """Per offline change: answer -> socket, answer -> publish, publish -> socket; and how many had no answer."""
    total, decide, deliver = [], [], []
    unmatched = 0
    for published, received, reason in observed.offline:
        answered = deciding_answer(published, reason, answers, window)
        if answered is None:
            unmatched += 1
            continue
        total.append(received - answered)
        decide.append(published - answered)
        deliver.append(received - published)
    return total, decide, deliver, unmatched


def up_seconds(args: argparse.Namespace) -> float:
    return args.outage_period - args.outage_seconds


class Fleet:
    """The exchanges and `manage.py serve`, each a process of its own; stopped with SIGTERM as by Ctrl-C."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.args, self.env = args, env
        self.children: list[subprocess.Popen[bytes]] = []
        self.serve: subprocess.Popen[bytes] | None = None
        self.urls: dict[str, str] = {}
        self.port = 0

    def start(self) -> None:
        from exchange_fleet.launcher import free_port, start_http_exchange, wait_for_port

        args = self.args
        for index in range(args.exchanges):
            port = free_port()
            name = VICTIM if index == 0 else f"bench-steady-{index}"
            outage: list[str] = []
            if name == VICTIM:
                # Down for `outage_seconds` at the end of every period, up the rest of it.
                start = args.outage_period - args.outage_seconds
                outage = ["--outage", f"{start}:{args.outage_period}", "--outage-period", str(args.outage_period)]
            self.children.append(start_http_exchange("alpha", port, "--jitter-ms", "0", *outage, quiet=True))
            self.urls[name] = f"http://127.0.0.1:{port}/mcp"
        self.port = free_port()
        if args.socket_batch_seconds is not None:
            self.env["PIPELINE_SOCKET_BATCH_SECONDS"] = str(args.socket_batch_seconds)
        self.serve = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port)],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None if args.verbose else subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.serve, 60)

    def stop(self) -> None:
        from exchange_fleet.launcher import stop_process

        if self.serve is not None and self.serve.poll() is None:
            self.serve.send_signal(signal.SIGTERM)
            try:
                self.serve.wait(40)
            except subprocess.TimeoutExpired:
                self.serve.kill()
                self.serve.wait()
        for child in self.children:
            stop_process(child)


async def measure(
    args: argparse.Namespace, fleet: Fleet, cookie: str, token: str
) -> tuple[Observed, list[tuple[float, str]]]:
    base = f"http://127.0.0.1:{fleet.port}"
    for name, url in fleet.urls.items():
        await register(base, token, name, url, args.interval)
    observed = Observed()
    await browse(fleet.port, cookie, args, observed)
    return observed, await wait_for_records(observed, up_seconds(args), 15.0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = scratch_environment()
    cookie, token = prepare_django()
    fleet = Fleet(args, env)
    try:
        fleet.start()
        observed, answers = asyncio.run(measure(args, fleet, cookie, token))
    finally:
        fleet.stop()
    total_s, decide_s, deliver_s, unmatched = match(observed, answers, up_seconds(args))
    total = summary(total_s)
    if total_s and total["p99"] >= TARGET_P99_MS:
        verdict = "FAIL"
    elif not total_s or unmatched:
        verdict = "INCOMPLETE (changes without their check on record)"
    else:
        verdict = "PASS"
    return {
        "exchanges": args.exchanges,
        "check_interval_s": args.interval,
        "outage": f"{args.outage_seconds} s every {args.outage_period} s",
        "socket_batch_seconds": env.get("PIPELINE_SOCKET_BATCH_SECONDS", "default"),
        "offline_changes_seen": len(observed.offline),
        "recoveries_seen": observed.recoveries,
        "unmatched": unmatched,
        "check_answer_to_socket_ms": total,
        "check_answer_to_publish_ms": summary(decide_s),
        "publish_to_socket_ms": summary(deliver_s),
        "baseline_bus_to_socket_ms": summary(observed.check_delivery),
        "baseline_ws_ping_ms": summary(observed.pings),
        "target_p99_ms": TARGET_P99_MS,
        "machine_load_average": [round(load, 2) for load in os.getloadavg()],
        "verdict": verdict,
    }


def print_report(report: dict[str, Any]) -> None:
    def line(label: str, numbers: dict[str, Any]) -> str:
        return (
            f"  {label:<44} n={numbers['samples']:<4} p50 {numbers['p50']:>7} ms  p95 {numbers['p95']:>7} ms  "
            f"p99 {numbers['p99']:>7} ms  max {numbers['max']} ms"
        )

    print(
        f"Status to browser: {report['exchanges']} demo exchanges over Streamable HTTP, checks every "
        f"{report['check_interval_s']:g} s, the victim down {report['outage']}; "
        f"{report['offline_changes_seen']} offline changes seen ({report['unmatched']} without a check on record), "
        f"{report['recoveries_seen']} recoveries; PIPELINE_SOCKET_BATCH_SECONDS {report['socket_batch_seconds']}"
    )
    print(line("failing check answered -> fleet.status on socket", report["check_answer_to_socket_ms"]))
    print(line("  of it: check answered -> event published", report["check_answer_to_publish_ms"]))
    print(line("  of it: event published -> on socket", report["publish_to_socket_ms"]))
    print(line("baseline: health.checks published -> on socket", report["baseline_bus_to_socket_ms"]))
    print(line("baseline: WebSocket ping round trip", report["baseline_ws_ping_ms"]))
    print(
        f"Target: p99 < {report['target_p99_ms']:g} ms on an idle fleet: {report['verdict']} "
        f"(the machine's load average at the end: {report['machine_load_average']})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.status_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--outages", type=int, default=30, help="offline changes to measure (at least 30)")
    parser.add_argument("--exchanges", type=int, default=3, help="demo exchanges in the idle fleet (one fails)")
    parser.add_argument("--interval", type=float, default=1.0, help="health check interval, seconds (>= 1)")
    parser.add_argument("--outage-period", type=float, default=3.0, help="the victim's outage repeats every ... s")
    parser.add_argument("--outage-seconds", type=float, default=1.5, help="... and lasts this long")
    parser.add_argument(
        "--socket-batch-seconds",
        type=float,
        help="PIPELINE_SOCKET_BATCH_SECONDS for the orchestrator (default: the setting's, 0.05): the longest a "
        "socket holds an event to send it with others",
    )
    parser.add_argument("--verbose", action="store_true", help="show the orchestrator's log")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.outage_seconds < args.interval:
        parser.error("--outage-seconds must be at least --interval, or an outage can fall between two checks")
    if up_seconds(args) < args.interval:
        parser.error("the victim must be up for at least --interval between outages, or it never recovers")
    sys.path.insert(0, str(REPO))
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
