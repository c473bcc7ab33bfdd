"""Live fleet status over WebSockets: a snapshot on connect, then every status change the supervisor publishes and
the "last seen" times after each batch of calls, so every open dashboard shows the same."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from registry.events import FLEET_GROUP
from registry.permissions import Role, role_of
from registry.selectors import fleet_live_rows


class FleetConsumer(AsyncJsonWebsocketConsumer):
    joined = False

    async def connect(self) -> None:
        if await self._role() < Role.VIEWER:
            # Closing before accept() refuses the handshake (HTTP 403 to the browser).
            await self.close()
            return
        await self.channel_layer.group_add(FLEET_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_json({"type": "fleet.snapshot", "servers": await self._snapshot()})

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(FLEET_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Read-only socket: the browser has nothing to say yet.
        return

    async def fleet_status(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {
                "type": "fleet.status",
                "server": event["server"],
                "status": event["status"],
                "status_reason": event.get("status_reason", ""),
                "last_seen_at": event.get("last_seen_at"),
                "protocol_version": event.get("protocol_version", ""),
            }
        )

    async def fleet_seen(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "fleet.seen", "servers": event.get("servers", {})})

    @database_sync_to_async
    def _role(self) -> Role:
        return role_of(self.scope.get("user"))

    @database_sync_to_async
    def _snapshot(self) -> list[dict[str, Any]]:
        return fleet_live_rows()
