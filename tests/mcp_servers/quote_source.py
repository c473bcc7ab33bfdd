"""A stdio MCP server (raw JSON-RPC, no SDK, so it can break its own promises) offering `get_quote` with an output
schema like the demo exchanges', for the fusion tests:

- ``good``: a quote at --price (bid = price - 1, ask = price + 1, last = price), timestamped now;
- ``schema``: structured content that violates the declared output schema (bid is a string);
- ``garbage``: no structured content, and text that is not JSON;
- ``stale``: a good quote whose timestamp is an hour old;
- ``missing``: structured content without the `last` field (the schema does not require it).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "symbol": {"type": "string"},
        "bid": {"type": "number"},
        "ask": {"type": "number"},
        "last": {"type": "number"},
        "timestamp": {"type": "string"},
    },
    "required": ["symbol", "bid", "ask", "timestamp"],
}
TOOL = {
    "name": "get_quote",
    "description": "A quote for one symbol",
    "inputSchema": {"type": "object", "properties": {"symbol": {"type": "string"}}, "required": ["symbol"]},
    "outputSchema": OUTPUT_SCHEMA,
}


def send(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def quote(mode: str, price: float, symbol: str) -> dict[str, object]:
    now = datetime.now(UTC) - (timedelta(hours=1) if mode == "stale" else timedelta(0))
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body: dict[str, object] = {"symbol": symbol, "bid": price - 1, "ask": price + 1, "last": price, "timestamp": stamp}
    if mode == "schema":
        body["bid"] = "one hundred"
    if mode == "missing":
        del body["last"]
    if mode == "garbage":
        return {"content": [{"type": "text", "text": "<html>500 upstream exploded</html>"}]}
    return {"content": [{"type": "text", "text": json.dumps(body)}], "structuredContent": body}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["good", "schema", "garbage", "stale", "missing"], default="good")
    parser.add_argument("--price", type=float, default=100.0)
    options = parser.parse_args()
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "id" not in message:
            continue
        method, rid = message.get("method"), message["id"]
        if method == "initialize":
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": f"quote-source-{options.mode}", "version": "0.0.1"},
            }
            send({"jsonrpc": "2.0", "id": rid, "result": result})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": rid, "result": {}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [TOOL]}})
        elif method == "tools/call":
            symbol = str((message.get("params", {}).get("arguments") or {}).get("symbol", ""))
            send({"jsonrpc": "2.0", "id": rid, "result": quote(options.mode, options.price, symbol)})
        else:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"Method not found: {method}"}})


if __name__ == "__main__":
    main()
