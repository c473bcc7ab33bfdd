"""Producers: every real-time capable server's notifications and polls turned into events, on the fleet loop.

A server is real-time capable when its latest discovery says it offers resource subscriptions or list-changed
notifications, or when a poll is configured on it (`metadata.poll`: tool, arguments, interval_seconds, stream).
For each such server a producer:
- subscribes to its resources through the fleet API (kept across reconnects by the connection layer, in both
  protocol eras: `resources/subscribe` or `subscriptions/listen`), reads each once, and on every
  `notifications/resources/updated` reads the resource again and publishes what it says (an update that arrives
  while the same resource is being read is coalesced into one more read, so a fast ticker cannot pile up reads);
- on every new session (a restart, a reconnect after an outage) subscribes and reads again, so it catches up;
- polls its tool at the configured interval;
- turns list-changed notifications into `fleet.capabilities` events.
Failures (a server down, a read refused during an outage) are counted and shown, never fatal: every loop here
catches, logs and goes on, and the set of producers follows the registry every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fleet import calls as fleet_calls
from fleet.background import Guard
from fleet.call_recorder import STREAMING_CALLER as CALLER
from fleet.orm_worker import OrmWorker
from mcp_client import ConnectionLayerError
from mcp_client.deadlines import Deadline
from pipeline.bus import EventBus
from pipeline.routes import Routed, route_poll, route_resource
from registry.models import CapabilitySnapshot, Server

logger = logging.getLogger(__name__)

RESOURCE_UPDATED = "notifications/resources/updated"


@dataclass(frozen=True)
class PollPlan:
    tool: str
    arguments: dict[str, Any]
    interval_seconds: float
    stream: str | None


@dataclass(frozen=True)
class ProducerPlan:
    """What to produce from one server, from its registration and latest discovery."""

    server: str
    uris: tuple[str, ...] = ()
    list_changed: bool = False
    poll: PollPlan | None = None
    timeout_seconds: float = 10.0


def _flag(capabilities: dict[str, Any], section: str, name: str) -> bool:
    value = capabilities.get(section)
    return isinstance(value, dict) and bool(value.get(name) or value.get(_camel_to_snake(name)))


def _camel_to_snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def realtime_plans() -> dict[str, ProducerPlan]:
    """Plans for every enabled server that is real-time capable (database work: run it in a thread)."""
    plans: dict[str, ProducerPlan] = {}
    for server in Server.objects.enabled().order_by("name"):
        snapshot = CapabilitySnapshot.objects.latest_for(server)
        capabilities = snapshot.capabilities if snapshot is not None else {}
        subscribable = _flag(capabilities, "resources", "subscribe")
        uris = (
            tuple(str(r["uri"]) for r in (snapshot.resources if snapshot else []) if r.get("uri"))
            if subscribable
            else ()
        )
        list_changed = any(_flag(capabilities, section, "listChanged") for section in ("tools", "resources", "prompts"))
        poll = poll_plan(server.metadata.get("poll") if isinstance(server.metadata, dict) else None)
        if uris or list_changed or poll is not None:
            plans[server.name] = ProducerPlan(
                server=server.name,
                uris=uris,
                list_changed=list_changed,
                poll=poll,
                timeout_seconds=server.request_timeout_seconds,
            )
    return plans


def poll_plan(raw: Any) -> PollPlan | None:
    """`metadata.poll` as a plan; the registry's validation has already refused a malformed one."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tool"), str):
        return None
    return PollPlan(
        tool=raw["tool"],
        arguments=dict(raw.get("arguments") or {}),
        interval_seconds=float(raw.get("interval_seconds", 5.0)),
        stream=raw.get("stream") or None,
    )


@dataclass
class ProducerStats:
    events: int = 0
    reads: int = 0
    polls: int = 0
    errors: int = 0
    last_error: str = ""
    last_event_at: float | None = None
    sessions_seen: int = 0
    subscribed: bool = False


class ServerProducer:
    def __init__(self, plan: ProducerPlan, bus: EventBus) -> None:
        self.plan = plan
        self.bus = bus
        self.stats = ProducerStats()
        self._reading: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._poller: asyncio.Task[None] | None = None
        self._catch_up: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def name(self) -> str:
        return self.plan.server

    def start(self) -> None:
        if self.plan.poll is not None:
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever(), name=f"poll-{self.name}")
        self.session_started()

    async def stop(self) -> None:
        self._stopped = True
        tasks = [t for t in (self._poller, self._catch_up, *self._reading.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.plan.uris:
            with contextlib.suppress(ConnectionLayerError, KeyError):
                await fleet_calls.unsubscribe_resources(self.name, self.plan.uris)

    # -- resources -------------------------------------------------------------------------------------------------

    def session_started(self) -> None:
        """A (new) session: subscribe and read everything once, so nothing changed in between is missed."""
        if not self.plan.uris or self._stopped:
            return
        if self._catch_up is not None and not self._catch_up.done():
            self._catch_up.cancel()
        self._catch_up = asyncio.get_running_loop().create_task(
            self._subscribe_and_read(), name=f"catch-up-{self.name}"
        )

    async def _subscribe_and_read(self) -> None:
        try:
            await fleet_calls.subscribe_resources(self.name, self.plan.uris)
            self.stats.subscribed = True
        except Exception as error:  # not running yet, or it went away: the next session tries again
            self.stats.subscribed = False
            self._failed(error)
            return
        for uri in self.plan.uris:
            self.resource_updated(uri)

    def resource_updated(self, uri: str) -> None:
        if self._stopped or uri not in self.plan.uris:
            return
        if uri in self._reading:
            self._dirty.add(uri)
            return
        task = asyncio.get_running_loop().create_task(self._read(uri))
        self._reading[uri] = task

    async def _read(self, uri: str) -> None:
        try:
            while True:
                self._dirty.discard(uri)
                try:
                    answer = await fleet_calls.read_resource(
                        self.name, uri, deadline=Deadline.within(self.plan.timeout_seconds), caller=CALLER
                    )
                    self.stats.reads += 1
                    self._publish(route_resource(self.name, uri, answer.result))
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    self._failed(error)
                if uri not in self._dirty or self._stopped:
                    return
        finally:
            self._reading.pop(uri, None)

    # -- polls -----------------------------------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        poll = self.plan.poll
        assert poll is not None
        while not self._stopped:
            started = time.monotonic()
            try:
                answer = await fleet_calls.call_tool(
                    self.name,
                    poll.tool,
                    poll.arguments,
                    deadline=Deadline.within(min(self.plan.timeout_seconds, max(poll.interval_seconds, 1.0))),
                    caller=CALLER,
                )
                self.stats.polls += 1
                self._publish(route_poll(self.name, poll.tool, poll.stream, answer.result))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._failed(error)
            await asyncio.sleep(max(0.0, poll.interval_seconds - (time.monotonic() - started)))

    # -- shared ----------------------------------------------------------------------------------------------------

    def _publish(self, routed: Routed) -> None:
        if self.bus.publish(routed.stream, routed.kind, routed.payload, server=self.name):
            self.stats.events += 1
            self.stats.last_event_at = time.time()

    def _failed(self, error: BaseException) -> None:
        self.stats.errors += 1
        self.stats.last_error = str(error)[:300] or type(error).__name__
        logger.debug("producer %s: %s", self.name, self.stats.last_error)

    def describe(self) -> dict[str, Any]:
        return {
            "server": self.name,
            "resources": len(self.plan.uris),
            "list_changed": self.plan.list_changed,
            "poll": None
            if self.plan.poll is None
            else {"tool": self.plan.poll.tool, "interval_seconds": self.plan.poll.interval_seconds},
            "subscribed": self.stats.subscribed,
            "events": self.stats.events,
            "reads": self.stats.reads,
            "polls": self.stats.polls,
            "errors": self.stats.errors,
            "last_error": self.stats.last_error,
            "last_event_at": self.stats.last_event_at,
        }


@dataclass
class ProducerManager:
    """The set of producers, kept matched to the registry; runs on the fleet loop."""

    bus: EventBus
    refresh_seconds: float = 5.0
    producers: dict[str, ServerProducer] = field(default_factory=dict)
    _guard: Guard = field(default_factory=lambda: Guard("pipeline producers"))
    _db: OrmWorker | None = None  # handed in by the fleet application (which stops it), or made at start
    _owns_db: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _refresh_now: asyncio.Event | None = None

    async def start(self) -> None:
        if self._db is None:
            self._db = OrmWorker(name="pipeline-producers-db")
            self._owns_db = True
        self._refresh_now = asyncio.Event()
        notifications = fleet_calls.subscribe_notifications(name="pipeline-producers", maxsize=10_000)
        states = fleet_calls.subscribe_states(name="pipeline-producers", maxsize=10_000)
        self._tasks = [
            self._guard.loop("reconcile", self._reconcile_forever),
            self._guard.loop("notifications", lambda: self._notifications(notifications)),
            self._guard.loop("states", lambda: self._states(states)),
        ]
        self._subscriptions = (notifications, states)

    def refresh_soon(self) -> None:
        """Look at the registry again now (a server was added, changed or discovered); safe from any thread."""
        event = self._refresh_now
        if event is not None:
            loop = self._tasks[0].get_loop() if self._tasks else None
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for subscription in getattr(self, "_subscriptions", ()):
            subscription.close()
        await asyncio.gather(*(p.stop() for p in self.producers.values()), return_exceptions=True)
        self.producers.clear()
        if self._db is not None and self._owns_db:
            self._db.shutdown(wait=False)

    @property
    def loop_errors(self) -> int:
        return self._guard.errors

    async def _reconcile_forever(self) -> None:
        assert self._db is not None and self._refresh_now is not None
        while True:
            try:
                plans = await self._db.run(realtime_plans)
                await self.reconcile(plans)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._guard.errors += 1
                logger.exception("pipeline producers: reconcile failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh_now.wait(), self.refresh_seconds)
            self._refresh_now.clear()

    async def reconcile(self, plans: dict[str, ProducerPlan]) -> None:
        for name in [n for n, p in self.producers.items() if plans.get(n) != p.plan]:
            await self.producers.pop(name).stop()
        for name, plan in plans.items():
            if name not in self.producers:
                producer = ServerProducer(plan, self.bus)
                self.producers[name] = producer
                producer.start()

    async def _notifications(self, subscription: Any) -> None:
        async for notification in subscription:
            producer = self.producers.get(notification.server)
            if notification.method == RESOURCE_UPDATED:
                if producer is not None:
                    producer.resource_updated(str(notification.params.get("uri", "")))
            elif notification.method.endswith("/list_changed"):
                self.bus.publish(
                    "fleet.capabilities",
                    notification.method.removeprefix("notifications/").replace("/", "."),
                    {"method": notification.method},
                    server=notification.server,
                )

    async def _states(self, subscription: Any) -> None:
        async for status in subscription:
            producer = self.producers.get(status.key)
            if producer is None or status.state != "connected":
                continue
            if status.sessions != producer.stats.sessions_seen:
                producer.stats.sessions_seen = status.sessions
                producer.session_started()

    def describe(self) -> list[dict[str, Any]]:
        return [producer.describe() for producer in self.producers.values()]
