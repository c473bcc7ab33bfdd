"""Starting servers as local processes: a free port, waiting until one listens, stopping it politely.

Used by the demo (the HTTP exchange), the benchmarks and the tests, so there is one way to do it.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 20.0) -> None:
    """Return once 127.0.0.1:port accepts connections; RuntimeError if the process exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before listening on port {port}")
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen, grace_seconds: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after the grace period; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when its parent dies, even by SIGKILL (Linux); else None.

    Without it a `kill -9` of the demo leaves its HTTP exchange running, and the next start launches another.
    """
    if not sys.platform.startswith("linux"):
        return None

    def arrange() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return arrange


def start_http_exchange(
    profile: str,
    port: int,
    *extra_args: str,
    quiet: bool = False,
    wait_seconds: float = 20.0,
    tied_to_parent: bool = False,
) -> subprocess.Popen:
    """`python -m exchange_fleet serve --profile P --transport streamable-http --port N`, listening on return.

    `tied_to_parent`: the exchange stops when this process dies, however it dies (only from the main thread: the
    kernel ties the child to the thread that started it).
    """
    argv: Sequence[str] = [sys.executable, "-m", "exchange_fleet", "serve", "--profile", profile]
    argv = [*argv, "--transport", "streamable-http", "--host", "127.0.0.1", "--port", str(port), *extra_args]
    return _listening(argv, port, quiet=quiet, wait_seconds=wait_seconds, tied_to_parent=tied_to_parent)


def _listening(
    argv: Sequence[str], port: int, *, quiet: bool, wait_seconds: float, tied_to_parent: bool = False
) -> subprocess.Popen:
    """Start `argv` and return once it listens on `port`; stopped again if it exits or never listens."""
    output = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        preexec_fn=die_with_parent() if tied_to_parent else None,  # noqa: PLW1509 - nothing but a prctl call
    )
    try:
        wait_for_port(port, process, wait_seconds)
    except RuntimeError:
        stop_process(process)
        raise
    return process


def start_http_exchange_fleet(
    count: int, port: int, *extra_args: str, profile: str = "alpha", quiet: bool = True, wait_seconds: float = 60.0
) -> tuple[subprocess.Popen, list[str]]:
    """`python -m exchange_fleet serve-many`: `count` exchanges in one process; returns it and their URLs."""
    argv = [sys.executable, "-m", "exchange_fleet", "serve-many", "--profile", profile, "--count", str(count)]
    argv += ["--port", str(port), *extra_args]
    process = _listening(argv, port, quiet=quiet, wait_seconds=wait_seconds)
    return process, [f"http://127.0.0.1:{port}/x{index}/mcp" for index in range(count)]


def start_exchange_host(port: int, *, quiet: bool = True, wait_seconds: float = 30.0) -> subprocess.Popen:
    """`python -m exchange_fleet serve-host`: fresh exchanges on request at http://127.0.0.1:port (see many.py)."""
    argv = [sys.executable, "-m", "exchange_fleet", "serve-host", "--port", str(port)]
    return _listening(argv, port, quiet=quiet, wait_seconds=wait_seconds)
