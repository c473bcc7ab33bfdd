"""Streamable HTTP and SSE sessions against real servers in subprocesses."""

from __future__ import annotations

import asyncio

import pytest

from mcp_client import (
    CallOutcome,
    ConnectionHub,
    ConnectionLost,
    RequestTimedOut,
    ServerTarget,
    ServerUnavailable,
)

from .helpers import HttpServer, await_until, everything_http_server, python_http_server


async def test_streamable_http_session_survives_a_server_restart(
    hub: ConnectionHub, marker: str, http_servers: list[HttpServer], outcomes: list[CallOutcome]
) -> None:
    server = python_http_server("well_behaved", "streamable-http", marker)
    http_servers.append(server)
    await asyncio.to_thread(server.start)
    target = ServerTarget(key="web", transport="http", url=server.url, request_timeout=5, connect_timeout=5)
    connection = await hub.ensure(target)
    caps = (await hub.discover("web")).result
    assert caps.era == "modern" and "echo" in caps.tool_names
    assert (await hub.probe("web")).result > 0

    # A call that outlives its timeout over HTTP: RequestTimedOut, and the session keeps serving others.
    slow, echo = await asyncio.gather(
        hub.call_tool("web", "slow", {"seconds": 5}, timeout=0.5),
        hub.call_tool("web", "echo", {"text": "meanwhile"}),
        return_exceptions=True,
    )
    assert isinstance(slow, RequestTimedOut)
    assert echo.result.text == "meanwhile"

    # Kill the server: the next call fails (the HTTP transport surfaces this as a torn-down session).
    server.kill()
    with pytest.raises((ConnectionLost, ServerUnavailable)):
        await hub.call_tool("web", "echo", {"text": "anyone?"})
    assert await await_until(lambda: connection.state in ("backoff", "connecting"), 5)
    with pytest.raises(ServerUnavailable):
        await hub.discover("web")  # fails fast while the server is away

    await asyncio.to_thread(server.start)  # same port
    status = await connection.wait_connected(15)
    assert status.sessions == 2 and status.consecutive_failures >= 1
    assert ((await hub.call_tool("web", "echo", {"text": "back"})).result).text == "back"
    kinds = [o.error_kind for o in outcomes]
    assert "timeout" in kinds and ("connection_lost" in kinds or "unavailable" in kinds)
    assert outcomes[-1].ok


async def test_sse_and_http_with_server_everything(
    hub: ConnectionHub, marker: str, http_servers: list[HttpServer]
) -> None:
    sse = everything_http_server("sse", marker)
    web = everything_http_server("streamableHttp", marker)
    http_servers.extend([sse, web])
    await asyncio.gather(asyncio.to_thread(sse.start), asyncio.to_thread(web.start))
    headers = {"Authorization": "Bearer test-token", "X-Orchestrator": "tests"}
    await hub.ensure(ServerTarget(key="sse", transport="sse", url=sse.url, headers=headers))
    await hub.ensure(ServerTarget(key="shttp", transport="http", url=web.url, headers=headers))
    for key in ("sse", "shttp"):
        caps = (await hub.discover(key)).result
        assert caps.era == "handshake"
        # with the elicitation, sampling and roots tools (we declare all three: the pass-through relays them)
        assert (len(caps.tools), len(caps.resources), len(caps.prompts)) == (17, 7, 4)
        assert (await hub.probe(key)).result > 0
        assert ((await hub.call_tool(key, "echo", {"message": key})).result).text == f"Echo: {key}"
        assert hub.statuses()[key].transport == ("sse" if key == "sse" else "http")
