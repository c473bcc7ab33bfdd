"""The state of one server's connection, as a snapshot that is safe to hand to other threads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .capabilities import Era

ConnectionState = Literal["connecting", "connected", "backoff", "stopped"]


@dataclass(frozen=True)
class ConnectionStatus:
    key: str
    transport: str
    state: ConnectionState
    attempts: int = 0  # connect attempts made since this connection was started
    consecutive_failures: int = 0  # failed attempts / short-lived sessions since the last stable session
    sessions: int = 0  # sessions established so far (1 + number of reconnects): identifies the current session
    last_error: str | None = None
    last_error_at: datetime | None = None
    # The last error needs a person (authorization refused, command not found), not just time: retried slowly.
    needs_attention: bool = False
    protocol_version: str | None = None
    era: Era | None = None
    connected_since: datetime | None = None
    next_retry_at: datetime | None = None
    server_info: dict[str, Any] | None = None
    pid: int | None = None  # stdio child pid of the current session, when it could be identified
    in_flight: int = 0
    stream_errors: int = 0  # unparseable messages from the server (garbage on stdout...), this session

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("last_error_at", "connected_since", "next_retry_at"):
            if data[name] is not None:
                data[name] = data[name].isoformat()
        return data
