"""From what a server says to an event: which stream, which kind, which payload.

A resource update is routed by its URI: the demo exchanges' tickers (`exchange://<exchange>/ticker/<symbol>`)
become `quotes.<symbol>` events with a quote payload; any other resource becomes a `resources.<server>` event with
the URI and the content (JSON when it parses, else text, cut at 8 KB). A poll result goes to the stream configured
with the poll (a `quotes.*` stream gets the quote payload) or to `polls.<server>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_TEXT = 8_192
TICKER_URI = re.compile(r"^exchange://(?P<exchange>[A-Za-z0-9_-]+)/ticker/(?P<symbol>[A-Za-z0-9_-]+)$")
STREAM_PART = re.compile(r"[^A-Za-z0-9_:-]+")


@dataclass(frozen=True)
class Routed:
    stream: str
    kind: str
    payload: dict[str, Any]


def stream_part(value: str) -> str:
    """A name made safe for one part of a stream name."""
    return STREAM_PART.sub("-", value).strip("-") or "unnamed"


def parse_content(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def quote_payload(data: dict[str, Any], *, exchange: str, symbol: str) -> dict[str, Any]:
    return {
        "exchange": str(data.get("exchange") or exchange),
        "symbol": str(data.get("symbol") or symbol),
        "bid": data.get("bid"),
        "ask": data.get("ask"),
        "last": data.get("last"),
        "size": data.get("size"),
        "time": data.get("timestamp") or data.get("time"),
    }


def route_resource(server: str, uri: str, text: str) -> Routed:
    data = parse_content(text)
    ticker = TICKER_URI.match(uri)
    if ticker and isinstance(data, dict):
        symbol = stream_part(ticker["symbol"])
        return Routed(f"quotes.{symbol}", "quote", quote_payload(data, exchange=ticker["exchange"], symbol=symbol))
    payload: dict[str, Any] = {"uri": uri}
    if data is not None:
        payload["json"] = data
    else:
        payload["text"] = text[:MAX_TEXT]
        payload["truncated"] = len(text) > MAX_TEXT
    return Routed(f"resources.{stream_part(server)}", "resource.updated", payload)


def route_poll(server: str, tool: str, stream: str | None, result: Any) -> Routed:
    target = stream or f"polls.{stream_part(server)}"
    if target.startswith("quotes.") and isinstance(result, dict):
        symbol = target.split(".", 1)[1]
        return Routed(target, "quote", quote_payload(result, exchange=server, symbol=symbol))
    return Routed(target, "poll", {"tool": tool, "result": result})
