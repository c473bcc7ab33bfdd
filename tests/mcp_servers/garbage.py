"""Misbehaving stdio servers (raw JSON-RPC, no SDK) selected with --mode:

- ``noise``: a working legacy-era server that also prints non-JSON lines to stdout (at start and before
  every response); the client must skip them. It supports resources/subscribe: every tools/call first
  sends notifications/resources/updated for each subscribed URI.
- ``nonjson``: answers every line with text that is not JSON, so no handshake can ever complete.
- ``badresult``: completes the initialize handshake properly, then answers tools/call with a result of the
  wrong shape (content is a string), which the SDK rejects with a pydantic ValidationError.
- ``exit``: prints a line of garbage and exits at once.
- ``stubborn``: like ``noise`` (without the noise), but keeps running after its stdin closes, so only a
  signal stops it: the test for children outliving a parent that never closed its sessions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

TOOL = {"name": "echo", "description": "echo", "inputSchema": {"type": "object", "properties": {}}}


def send(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def garbage(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["noise", "nonjson", "badresult", "exit", "stubborn"], default="noise")
    parser.add_argument("--marker", default="")
    # --ticker: also list one resource, test://ticker, whose JSON counts the tool calls (a legacy-era ticker).
    parser.add_argument("--ticker", action="store_true")
    options = parser.parse_args()
    mode, ticker = options.mode, options.ticker
    calls = 0
    if mode == "exit":
        garbage("this server is leaving")
        return
    if mode == "noise":
        garbage("*** starting up, not JSON ***")
    subscribed: set[str] = set()
    for line in sys.stdin:
        if mode == "nonjson":
            garbage("<html>definitely not json</html>")
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "id" not in message:
            continue  # a notification: no answer
        method, rid = message.get("method"), message["id"]
        if mode == "noise":
            garbage(f"noise before answering {method} {{not: json")
        if method == "initialize":
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}, "resources": {"subscribe": True}},
                "serverInfo": {"name": f"garbage-{mode}", "version": "0.0.1"},
            }
            send({"jsonrpc": "2.0", "id": rid, "result": result})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": rid, "result": {}})
        elif method == "resources/subscribe":
            subscribed.add(message["params"]["uri"])
            send({"jsonrpc": "2.0", "id": rid, "result": {}})
        elif method == "resources/unsubscribe":
            subscribed.discard(message["params"]["uri"])
            send({"jsonrpc": "2.0", "id": rid, "result": {}})
        elif method == "resources/list":
            listed = [{"uri": "test://ticker", "name": "ticker"}] if ticker else []
            send({"jsonrpc": "2.0", "id": rid, "result": {"resources": listed}})
        elif method == "resources/read" and ticker:
            text = json.dumps({"calls": calls})
            contents = [{"uri": "test://ticker", "mimeType": "application/json", "text": text}]
            send({"jsonrpc": "2.0", "id": rid, "result": {"contents": contents}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [TOOL]}})
        elif method == "tools/call":
            calls += 1
            for uri in sorted(subscribed):
                send({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}})
            if mode == "badresult":
                send({"jsonrpc": "2.0", "id": rid, "result": {"content": "not a list", "isError": "maybe"}})
            else:
                args = message.get("params", {}).get("arguments") or {}
                text = str(args.get("text", ""))
                send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": text}]}})
        else:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"Method not found: {method}"}})
    if mode == "stubborn":
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
