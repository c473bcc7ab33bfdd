"""`serve-host`: fresh exchanges made on request in one process, each what `serve` with the same flags would run."""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from mcp import Client

from exchange_fleet.launcher import free_port, start_exchange_host, stop_process
from exchange_fleet.tests.sessions import READ_TIMEOUT_S, structured


@pytest.fixture(scope="module")
def host_url() -> Iterator[str]:
    port = free_port()
    process = start_exchange_host(port)
    yield f"http://127.0.0.1:{port}"
    stop_process(process)
    assert process.returncode == 0


def request(url: str, method: str, body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    made = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(made, timeout=30) as response:
            text = response.read()
            return response.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text.startswith(b"{") else {"text": text.decode()}


def make(host_url: str, *flags: str) -> str:
    status, answer = request(f"{host_url}/exchanges", "POST", {"argv": list(flags)})
    assert status == 201, answer
    return answer["key"]


async def test_each_exchange_is_fresh_and_has_its_own_flags_and_ledger(host_url: str) -> None:
    first = make(host_url, "--profile", "beta", "--no-outages", "--taker-fee", "0.004")
    second = make(host_url, "--profile", "beta", "--no-outages")
    assert first != second
    async with Client(f"{host_url}/e/{first}/mcp", read_timeout_seconds=READ_TIMEOUT_S) as client:
        info = structured(await client.call_tool("get_exchange_info", {}))
        assert info["exchange"] == "beta" and info["taker_fee"] == pytest.approx(0.004)
        reserved = structured(
            await client.call_tool("reserve_order", {"symbol": "BTC-USD", "side": "buy", "quantity": 0.01})
        )
        assert reserved["status"] == "reserved", reserved
        assert structured(await client.call_tool("get_balances", {}))["balances"]["USD"]["reserved"] > 0
    async with Client(f"{host_url}/e/{second}/mcp", read_timeout_seconds=READ_TIMEOUT_S) as client:
        info = structured(await client.call_tool("get_exchange_info", {}))
        assert info["taker_fee"] != pytest.approx(0.004)
        # The other exchange's reservation is not here: nothing is shared but the process.
        assert structured(await client.call_tool("get_balances", {}))["balances"]["USD"]["reserved"] == 0


async def test_a_retired_exchange_is_gone_and_bad_flags_are_refused(host_url: str) -> None:
    key = make(host_url, "--profile", "alpha")
    assert request(f"{host_url}/exchanges/{key}", "DELETE")[0] == 204
    assert request(f"{host_url}/e/{key}/mcp", "POST", {})[0] == 404
    assert request(f"{host_url}/exchanges/{key}", "DELETE")[0] == 404
    status, answer = request(f"{host_url}/exchanges", "POST", {"argv": ["--profile", "nonesuch"]})
    assert status == 400 and "nonesuch" in answer["error"]
    status, answer = request(f"{host_url}/exchanges", "POST", {"argv": ["--profile", "alpha", "--latency-ms", "x"]})
    assert status == 400 and "bad serve flags" in answer["error"]
    assert request(f"{host_url}/exchanges", "POST", {"argv": "--profile alpha"})[0] == 400
