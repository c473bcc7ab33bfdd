"""Server notifications in both protocol eras, and the resource subscriptions that keep them coming.

Handshake era (2025-11-25 and older): notifications arrive through the Client's message handler; resource updates
need a `resources/subscribe` per URI, re-sent after every reconnect. 2026-07-28 era: they arrive on a
`subscriptions/listen` stream (list changes plus the subscribed URIs), restarted with a new filter when the
subscriptions change. Either way they leave as `ServerNotification`s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import mcp_types as types
from mcp import Client, MCPError
from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost
from mcp.shared.subscriptions import event_to_notification

from .capabilities import era_of
from .errors import ConnectionLayerError
from .failures import describe_exception

logger = logging.getLogger("mcp_client.session")

Emit = Callable[[Any], None]
SendSubscribe = Callable[[str, bool], Awaitable[None]]


async def send_subscribe(client: Client, *, uri: str, subscribe: bool) -> None:
    # Straight to send_request: the SDK's subscribe_resource helpers warn (deprecated in the 2026 era), and this is
    # only used on handshake-era sessions, where the methods are current.
    params = types.SubscribeRequestParams(uri=uri) if subscribe else types.UnsubscribeRequestParams(uri=uri)
    request = types.SubscribeRequest(params=params) if subscribe else types.UnsubscribeRequest(params=params)
    await client.session.send_request(request, types.EmptyResult)


class NotificationChannel:
    """The subscriptions of one connection and, per session, the helper tasks that deliver its notifications."""

    def __init__(
        self,
        server: str,
        *,
        emit: Emit,
        subscribe_request: SendSubscribe,
        is_current: Callable[[Client], bool],
        on_stream_lost: Callable[[str], None],
    ) -> None:
        self._server = server
        self._emit = emit
        self._subscribe_request = subscribe_request
        self._is_current = is_current
        self._on_stream_lost = on_stream_lost
        self.uris: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, client: Client) -> list[asyncio.Task[None]]:
        """Per-session helpers, run beside the owner and cancelled before the Client exits."""
        self.tasks = []
        if era_of(client.protocol_version) == "handshake":
            if self.uris:
                self.tasks.append(asyncio.create_task(self._resubscribe(sorted(self.uris))))
        else:
            self._restart_listener(client)
        return self.tasks

    async def subscribe(self, client: Client | None, uris: Iterable[str]) -> None:
        new = [uri for uri in dict.fromkeys(uris) if uri not in self.uris]
        self.uris.update(new)
        if not new or client is None:
            return  # applied when the next session comes up
        if era_of(client.protocol_version) == "handshake":
            for uri in new:
                await self._subscribe_request(uri, True)
        else:
            self._restart_listener(client)

    async def unsubscribe(self, client: Client | None, uris: Iterable[str]) -> None:
        gone = [uri for uri in dict.fromkeys(uris) if uri in self.uris]
        self.uris.difference_update(gone)
        if not gone or client is None:
            return
        if era_of(client.protocol_version) == "handshake":
            for uri in gone:
                await self._subscribe_request(uri, False)
        else:
            self._restart_listener(client)

    async def _resubscribe(self, uris: list[str]) -> None:
        for uri in uris:
            try:
                await self._subscribe_request(uri, True)
            except ConnectionLayerError as exc:
                logger.warning("MCP server %r: could not subscribe to %s: %s", self._server, uri, exc)

    def _restart_listener(self, client: Client) -> None:
        for task in self.tasks:
            if task.get_name().startswith("mcp-listen:"):
                task.cancel()
        listener = asyncio.create_task(self._listen(client, sorted(self.uris)), name=f"mcp-listen:{self._server}")
        self.tasks.append(listener)

    async def _listen(self, client: Client, uris: list[str]) -> None:
        """2026-07-28 era: list-changed and resource-updated events arrive on a subscriptions/listen stream. The
        stream also tells us early when a Streamable HTTP server dies: a lost stream makes the connection check the
        server at once instead of at the next request."""
        while self._is_current(client):
            try:
                async with client.listen(
                    tools_list_changed=True,
                    prompts_list_changed=True,
                    resources_list_changed=True,
                    resource_subscriptions=uris,
                ) as subscription:
                    async for event in subscription:
                        self._emit(event_to_notification(event, {}))
                self._on_stream_lost("the server closed its notification stream")
                return
            except SubscriptionLost as exc:
                logger.info("MCP server %r: listen stream lost (%s); re-listening", self._server, exc)
                self._on_stream_lost("notification stream lost")
            except (MCPError, ListenNotSupportedError, TimeoutError) as exc:
                # Servers may not implement subscriptions/listen; notifications are a bonus, not a requirement.
                logger.info("MCP server %r: no change notifications (%s)", self._server, describe_exception(exc))
                return
            except asyncio.CancelledError:
                raise
            except (Exception, BaseExceptionGroup) as exc:  # noqa: B036 - transports raise groups of anything
                logger.info("MCP server %r: listen stream failed (%s)", self._server, describe_exception(exc))
                self._on_stream_lost("notification stream failed")
            await asyncio.sleep(1.0)
