"""What the registry tells the floors above it, through one interface they implement (`RegistryListener`).

The registry is the ground floor and imports nothing above it. What listens (the pipeline, which turns these into
`fleet.status` and `fleet.seen` events; the fleet, whose sessions follow the definitions) connects a listener when it
starts and disconnects it when it stops. An announcement is made by whoever owns the event, where it happened, once
its write is committed:
- a status decided on the fleet loop (the health monitor) is announced on the fleet loop, after the status write
  came back from the database thread; the call recorder announces the servers seen there too;
- an edit from a request thread (API, admin, import, enabling or disabling) is announced on that thread, when its
  transaction commits.
Listeners are called synchronously and must not block (the pipeline's publish queues and returns); a listener that
raises is logged and the others are still told.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.db import transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusTransition:
    """What a status write did: `changed` is False when only the reason (or nothing) changed."""

    server_id: int
    name: str
    from_status: str
    to_status: str
    reason: str
    changed: bool
    at: datetime
    last_seen_at: datetime | None
    protocol_version: str


class RegistryListener(Protocol):
    def status_changed(self, transition: StatusTransition) -> None:
        """A server's status (or only its reason) was written."""

    def servers_seen(self, seen: Mapping[str, datetime]) -> None:
        """These servers answered a call in the last batch, last at these times."""

    def registry_changed(self) -> None:
        """A server was created, changed or deleted."""


# Copied on write, so announcing (on every status write and call batch) takes no lock.
_listeners: tuple[RegistryListener, ...] = ()
_listeners_lock = threading.Lock()


def connect(listener: RegistryListener) -> None:
    global _listeners
    with _listeners_lock:
        if listener not in _listeners:
            _listeners = (*_listeners, listener)


def disconnect(listener: RegistryListener) -> None:
    global _listeners
    with _listeners_lock:
        _listeners = tuple(known for known in _listeners if known is not listener)


def _tell(what: str, call: Callable[[RegistryListener], None]) -> None:
    for listener in _listeners:
        try:
            call(listener)
        except Exception:
            logger.exception("registry: a listener failed on %s: %r", what, listener)


def status_changed(transition: StatusTransition) -> None:
    """Announce a status write that is committed (the caller's thread or loop is where listeners hear it)."""
    _tell("status_changed", lambda listener: listener.status_changed(transition))


def servers_seen(seen: Mapping[str, datetime]) -> None:
    if seen:
        _tell("servers_seen", lambda listener: listener.servers_seen(seen))


def registry_changed() -> None:
    """Announce a change to the servers once the current transaction (if any) commits, whatever made it."""
    transaction.on_commit(lambda: _tell("registry_changed", lambda listener: listener.registry_changed()))
