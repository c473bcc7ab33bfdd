"""From what a server says to an event: which stream, which kind, which payload.

A resource update is routed by its URI: the demo exchanges' tickers (`exchange://<exchange>/ticker/<symbol>`)
become `quotes.<symbol>` events with a quote payload; any other resource becomes a `resources.<server>` event with
the URI and the content (its JSON value when it has one, else text, cut at 8 KB). A poll result goes to the stream
configured with the poll (a `quotes.*` stream gets the quote payload) or to `polls.<server>`, its value being the
result's value (structured content, else JSON), else its text cut at 8 KB. Values are read by
`mcp_client.results.result_value`, as everywhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mcp_client.results import NoResultValue, ResourceReadResult, ToolAnsweredError, ToolCallResult, result_value

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


class PollFailed(RuntimeError):
    """A poll's tool answered with an error."""


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


def route_resource(server: str, uri: str, result: ResourceReadResult) -> Routed:
    payload: dict[str, Any] = {"uri": uri}
    try:
        data = result_value(result)
    except NoResultValue as exc:
        payload["text"] = exc.text[:MAX_TEXT]
        payload["truncated"] = len(exc.text) > MAX_TEXT
        return Routed(f"resources.{stream_part(server)}", "resource.updated", payload)
    ticker = TICKER_URI.match(uri)
    if ticker and isinstance(data, dict):
        symbol = stream_part(ticker["symbol"])
        return Routed(f"quotes.{symbol}", "quote", quote_payload(data, exchange=ticker["exchange"], symbol=symbol))
    payload["json"] = data
    return Routed(f"resources.{stream_part(server)}", "resource.updated", payload)


def route_poll(server: str, tool: str, stream: str | None, answer: ToolCallResult) -> Routed:
    """PollFailed when the tool answered with an error (nothing is published)."""
    try:
        result: Any = result_value(answer)
    except ToolAnsweredError as exc:
        raise PollFailed(f"{tool} answered an error: {exc.text[:200]}") from None
    except NoResultValue as exc:
        result = exc.text[:MAX_TEXT]
    target = stream or f"polls.{stream_part(server)}"
    if target.startswith("quotes.") and isinstance(result, dict):
        symbol = target.split(".", 1)[1]
        return Routed(target, "quote", quote_payload(result, exchange=server, symbol=symbol))
    return Routed(target, "poll", {"tool": tool, "result": result})
