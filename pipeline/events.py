"""What travels through the pipeline: an event on a named stream with its sequence number, and the marker a reader
gets instead of events it lost.

Stream names are dotted (`quotes.BTC-USD`, `spreads.BTC-USD`, `fleet.status`, `health.alerts`); the first part is the
family a browser subscribes to with a pattern (`quotes.*`). Sequence numbers are per stream and grow by one with every
event, so a reader that knows the last one it saw knows exactly what it missed.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# A reader's bounded queue (`mcp_client.streams.Subscription`) reports the events it lost with this marker.
from mcp_client.streams import Gap as Gap

STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_:-]+)*$")
MAX_STREAM_LENGTH = 200
MAX_KIND_LENGTH = 64


def check_stream_name(name: str) -> str:
    """The name itself if it is a valid stream name, else ValueError saying why."""
    if not isinstance(name, str) or not name:
        raise ValueError("a stream name is a non-empty string")
    if len(name) > MAX_STREAM_LENGTH:
        raise ValueError(f"a stream name has at most {MAX_STREAM_LENGTH} characters")
    if not STREAM_NAME.match(name):
        raise ValueError("a stream name is dotted parts of letters, digits, '-', '_' (e.g. quotes.BTC-USD)")
    return name


@dataclass(slots=True)
class Event:
    """One event. `seq` is 0 until the bus sequences it; `at` is the publisher's wall clock (Unix seconds)."""

    stream: str
    kind: str
    payload: dict[str, Any]
    server: str | None = None
    at: float = field(default_factory=time.time)
    seq: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "seq": self.seq,
            "kind": self.kind,
            "server": self.server,
            "at": iso_time(self.at),
            "payload": self.payload,
        }

    def as_wire(self) -> list[Any]:
        """The form sockets get from the channel layer: what they filter on, and the event's JSON encoded once
        (not once per socket): [stream, seq, kind, server, at, json text]."""
        return [
            self.stream,
            self.seq,
            self.kind,
            self.server,
            self.at,
            json.dumps(self.as_json(), separators=(",", ":")),
        ]


def iso_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
