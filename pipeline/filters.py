"""Which events a reader wants: stream patterns, and optionally servers and kinds.

A pattern is a stream name where `*` stands for any run of characters (`quotes.*`, `*.BTC-USD`, `*`), matched with
`fnmatch` rules but case-sensitively; `?` and `[...]` are not allowed, so a pattern means what it looks like.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from pipeline.events import MAX_STREAM_LENGTH, Event

STREAM_PATTERN = re.compile(r"^[A-Za-z0-9_*-]+(\.[A-Za-z0-9_:*-]+)*$")


def check_stream_pattern(pattern: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("a stream pattern is a non-empty string")
    if len(pattern) > MAX_STREAM_LENGTH:
        raise ValueError(f"a stream pattern has at most {MAX_STREAM_LENGTH} characters")
    if not STREAM_PATTERN.match(pattern):
        raise ValueError(f"{pattern[:60]!r} is not a stream pattern (dotted names, '*' as a wildcard: quotes.*)")
    return pattern


def stream_matches(pattern: str, stream: str) -> bool:
    if "*" not in pattern:
        return pattern == stream
    return fnmatchcase(stream, pattern)


@dataclass(frozen=True)
class EventFilter:
    """Streams are required (a reader says what it wants); empty servers or kinds mean any."""

    streams: frozenset[str]
    servers: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()

    @classmethod
    def of(cls, streams: Iterable[str], servers: Iterable[str] = (), kinds: Iterable[str] = ()) -> EventFilter:
        return cls(frozenset(streams), frozenset(servers), frozenset(kinds))

    def wants_stream(self, stream: str) -> bool:
        return any(stream_matches(pattern, stream) for pattern in self.streams)

    def wants(self, event: Event) -> bool:
        if self.servers and event.server not in self.servers:
            return False
        if self.kinds and event.kind not in self.kinds:
            return False
        return self.wants_stream(event.stream)
