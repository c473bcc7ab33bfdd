"""The CLI as real child processes: stdio and Streamable HTTP, restarts, and no process left behind."""

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from exchange_fleet.market import MarketModel
from exchange_fleet.profiles import profile_by_name
from exchange_fleet.tests.sessions import PYTHON, READ_TIMEOUT_S, REPO_ROOT, free_port, structured


def pids_with_marker(marker: str) -> list[int]:
    """Live processes whose command line contains `marker` (read from /proc, Linux only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if marker.encode() in cmdline and "\nState:\tZ" not in status:
            found.append(int(entry.name))
    return found


async def wait_until_gone(marker: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while pids := pids_with_marker(marker):
        assert time.monotonic() < deadline, f"server processes left behind: {pids}"
        await anyio.sleep(0.05)


def test_list_prints_demo_fleet_as_json() -> None:
    out = subprocess.run(
        [PYTHON, "-m", "exchange_fleet", "list"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    names = [p["name"] for p in json.loads(out)]
    assert names == ["alpha", "beta", "gamma", "delta", "epsilon"]


async def test_stdio_server_serves_tools_and_exits_with_the_client() -> None:
    # A unique seed marks this child's command line so the test can prove it exited.
    marker_seed = str(uuid.uuid4().int % 10**9 + 10**9)
    params = StdioServerParameters(
        command=PYTHON,
        args=["-m", "exchange_fleet", "serve", "--profile", "gamma", "--latency-ms", "0", "--seed", marker_seed],
        cwd=str(REPO_ROOT),
    )
    async with Client(params, read_timeout_seconds=READ_TIMEOUT_S) as client:
        quote = structured(await client.call_tool("get_quote", {"symbol": "BTC-USD"}))
        assert quote["exchange"] == "gamma" and quote["bid"] < quote["ask"]
        info = structured(await client.call_tool("get_exchange_info", {}))
        assert info["base_latency_ms"] == 0  # the flag reached the child
        assert pids_with_marker(marker_seed)
    await wait_until_gone(marker_seed)


async def test_streamable_http_server_serves_tools_and_terminates_cleanly(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    process = start_http_server(port, log_path)
    try:
        await wait_for_port(port, process, log_path)
        async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=READ_TIMEOUT_S) as client:
            quote = structured(await client.call_tool("get_quote", {"symbol": "SOL-USD"}))
            assert quote["exchange"] == "epsilon"
            r = structured(await client.call_tool("reserve_order", {"symbol": "SOL-USD", "side": "buy", "quantity": 1}))
            fill = structured(await client.call_tool("confirm_order", {"reservation_id": r["reservation_id"]}))
            assert fill["status"] == "confirmed"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert returncode == 0, server_log(log_path)


async def test_a_restarted_exchange_resumes_its_ledger_and_its_prices(tmp_path: Path) -> None:
    ledger_path = tmp_path / "alpha-ledger.json"
    seed = uuid.uuid4().int % 10**9 + 10**9  # also marks this child's command line
    params = StdioServerParameters(
        command=PYTHON,
        args=["-m", "exchange_fleet", "serve", "--profile", "alpha", "--latency-ms", "0", "--jitter-ms", "0"]
        + ["--seed", str(seed), "--reservation-ttl", "600", "--ledger-path", str(ledger_path)],
        cwd=str(REPO_ROOT),
    )
    alpha = profile_by_name("alpha")
    # What any exchange with this seed quotes at a given tick, wherever and whenever it runs.
    reference = MarketModel(
        alpha.symbols, seed=seed, spread_bps=alpha.spread_bps, price_bias=alpha.price_bias, tick_interval_s=1.0
    )

    async def quote_matches_reference(client: Client) -> None:
        before = time.time()
        quote = structured(await client.call_tool("get_quote", {"symbol": "BTC-USD"}))
        assert int(before) <= quote["tick"] <= int(time.time())
        expected = reference.quote("BTC-USD", quote["tick"])
        assert (quote["bid"], quote["ask"], quote["mid"]) == (expected.bid, expected.ask, expected.mid)

    async with Client(params, read_timeout_seconds=READ_TIMEOUT_S) as client:
        await quote_matches_reference(client)
        done = structured(
            await client.call_tool(
                "reserve_order", {"symbol": "ETH-USD", "side": "buy", "quantity": 1, "idempotency_key": "tx-1"}
            )
        )
        fill = structured(await client.call_tool("confirm_order", {"reservation_id": done["reservation_id"]}))
        held = structured(
            await client.call_tool(
                "reserve_order", {"symbol": "BTC-USD", "side": "sell", "quantity": 0.1, "idempotency_key": "tx-2"}
            )
        )
        balances = structured(await client.call_tool("get_balances", {}))["balances"]
        assert balances["BTC"]["reserved"] == 0.1 and balances["ETH"]["total"] == 21
    await wait_until_gone(str(seed))

    async with Client(params, read_timeout_seconds=READ_TIMEOUT_S) as client:
        assert structured(await client.call_tool("get_balances", {}))["balances"] == balances
        confirmed = structured(await client.call_tool("get_reservation", {"idempotency_key": "tx-1"}))
        assert confirmed["status"] == "confirmed" and confirmed["executed_at"] == fill["executed_at"]
        assert structured(await client.call_tool("confirm_order", {"reservation_id": done["reservation_id"]})) == fill
        still_held = structured(await client.call_tool("get_reservation", {"reservation_id": held["reservation_id"]}))
        assert still_held["status"] == "reserved" and still_held["expires_at"] == held["expires_at"]
        retried = structured(
            await client.call_tool(
                "reserve_order", {"symbol": "BTC-USD", "side": "sell", "quantity": 0.1, "idempotency_key": "tx-2"}
            )
        )
        assert retried["reservation_id"] == held["reservation_id"]
        assert structured(await client.call_tool("get_exchange_info", {}))["ledger_path"] == str(ledger_path)
        await quote_matches_reference(client)
    await wait_until_gone(str(seed))


def test_an_unreadable_ledger_file_stops_the_start_with_a_message(tmp_path: Path) -> None:
    ledger_path = tmp_path / "broken.json"
    ledger_path.write_text("{not json")
    result = subprocess.run(
        [PYTHON, "-m", "exchange_fleet", "serve", "--profile", "alpha", "--ledger-path", str(ledger_path)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "not valid JSON" in result.stderr


def start_http_server(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    # Output goes to a file, not a pipe: an unread pipe could fill up and stall the server.
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [PYTHON, "-m", "exchange_fleet", "serve", "--profile", "epsilon", "--transport", "streamable-http"]
            + ["--port", str(port), "--latency-ms", "0", "--jitter-ms", "0"],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def server_log(log_path: Path) -> str:
    return log_path.read_text(errors="replace")


async def wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, f"server exited early:\n{server_log(log_path)}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            assert time.monotonic() < deadline, f"server never listened on {port}:\n{server_log(log_path)}"
            await anyio.sleep(0.05)
