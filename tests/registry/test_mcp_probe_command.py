"""`manage.py mcp_probe`: what an operator sees for a healthy server, and a one-line reason for every failure."""

from __future__ import annotations

import json
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

SERVERS = Path(settings.BASE_DIR) / "tests" / "mcp_servers"
EXCHANGE = [sys.executable, "-m", "exchange_fleet", "serve", "--profile", "alpha"]


def probe(*words: str) -> str:
    out = StringIO()
    call_command("mcp_probe", *words, stdout=out)
    return out.getvalue()


def test_it_lists_what_a_stdio_server_offers_and_calls_a_tool():
    text = probe(
        "--cwd", str(settings.BASE_DIR), "--call", "get_quote", "--arguments", '{"symbol": "ETH-USD"}', *EXCHANGE
    )
    assert "Protocol: 2026-07-28 (modern era)" in text
    assert "- get_quote(symbol)" in text
    assert "exchange://alpha/ticker/BTC-USD" in text
    assert "- explain_spread" in text
    assert "Call get_quote" in text and "-> ok" in text
    assert '"symbol": "ETH-USD"' in text


def test_json_output_is_one_parseable_document():
    document = json.loads(probe("--json", "--cwd", str(settings.BASE_DIR), *EXCHANGE))
    assert document["era"] == "modern"
    assert {tool["name"] for tool in document["tools"]} >= {"get_quote", "reserve_order", "confirm_order"}


@pytest.mark.parametrize(
    ("words", "reason"),
    [
        (["no-such-command-xyz"], "command not found: no-such-command-xyz"),
        (["--timeout", "3", "http://127.0.0.1:9/mcp"], "probe of http://127.0.0.1:9/mcp failed"),
        (["--arguments", "{not json", "--call", "x", "mcp-server-time"], "--arguments is not valid JSON"),
        (["--arguments", "[1, 2]", "--call", "x", "mcp-server-time"], "--arguments must be a JSON object"),
        (["--header", "no-equals-sign", "http://127.0.0.1:9/mcp"], "--header takes NAME=VALUE"),
        ([], "give the server as the last argument"),
        (["--timeout", "2", "--call", "hang", sys.executable, str(SERVERS / "hanging.py")], "no answer in time"),
        (["--timeout", "3", sys.executable, str(SERVERS / "garbage.py"), "--mode", "nonjson"], "probe of"),
    ],
)
def test_failures_end_with_one_line_saying_why(words, reason):
    with pytest.raises(CommandError) as failure:
        probe(*words)
    message = str(failure.value)
    assert reason in message
    assert "\n" not in message


def test_a_tool_error_result_is_a_failure(capsys):
    with pytest.raises(CommandError, match="returned an error result"):
        probe("--cwd", str(settings.BASE_DIR), "--call", "get_quote", "--arguments", '{"symbol": "NOPE"}', *EXCHANGE)
