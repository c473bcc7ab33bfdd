"""Full, fresh discovery of what an MCP server offers.

Everything is dumped to plain JSON-able dicts (`by_alias=True`, so `inputSchema`/`outputSchema` keep their
wire names) because the registry stores them and the UI renders them; nothing downstream should need the
SDK's pydantic models.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mcp import Client, MCPError
from mcp_types import METHOD_NOT_FOUND
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

logger = logging.getLogger(__name__)

Era = Literal["modern", "handshake"]
"""`modern`: 2026-07-28+ (server/discover, stateless requests, no ping). `handshake`: initialize-era
(2025-11-25 and older), where ping and resources/subscribe exist."""

DEFAULT_PAGE_CAP = 50
"""Max pages per listing: a server whose cursor never ends must not hang discovery."""


def era_of(protocol_version: str | None) -> Era:
    return "modern" if protocol_version in MODERN_PROTOCOL_VERSIONS else "handshake"


def dump(model: BaseModel) -> dict[str, Any]:
    """The one JSON shape used everywhere in the layer (wire field names, no nulls)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass
class DiscoveredCapabilities:
    protocol_version: str
    era: Era
    server_info: dict[str, Any] | None
    instructions: str | None
    capabilities: dict[str, Any]
    tools: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    resource_templates: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    # Listings cut short by the page cap (their lists hold only the pages that were fetched).
    truncated: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def tool_names(self) -> list[str]:
        return [tool["name"] for tool in self.tools]


async def _all_pages(
    what: str,
    fetch: Callable[[str | None], Awaitable[Any]],
    items_of: Callable[[Any], list[BaseModel]],
    page_cap: int,
    truncated: list[str],
) -> list[dict[str, Any]]:
    """Follow next_cursor until the listing ends, the cursor repeats, or the page cap is hit."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(page_cap):
        page = await fetch(cursor)
        items.extend(dump(item) for item in items_of(page))
        cursor = page.next_cursor
        if cursor is None:
            return items
        if cursor in seen:  # a paginator that loops would otherwise duplicate items up to the cap
            logger.warning("%s: server repeated cursor %r; stopping", what, cursor)
            truncated.append(what)
            return items
        seen.add(cursor)
    logger.warning("%s: stopped after %d pages (page cap)", what, page_cap)
    truncated.append(what)
    return items


async def fetch_capabilities(client: Client, *, page_cap: int = DEFAULT_PAGE_CAP) -> DiscoveredCapabilities:
    """List tools, resources, resource templates and prompts of a connected client, all pages, uncached.

    Only what the server declares in its capabilities is listed, so a server without prompts gives an empty
    prompts list instead of a -32601 error. The listings run concurrently on the one session (each one's
    pages in order), which roughly divides discovery latency by the number of listings.
    """
    caps = client.server_capabilities
    truncated: list[str] = []

    async def listing(
        declared: object,
        what: str,
        fetch: Callable[[str | None], Awaitable[Any]],
        items_of: Callable[[Any], list[BaseModel]],
        *,
        optional_method: bool = False,
    ) -> list[dict[str, Any]]:
        if declared is None:
            return []
        try:
            return await _all_pages(what, fetch, items_of, page_cap, truncated)
        except MCPError as exc:
            # Templates are optional within the resources capability; older servers don't implement the method.
            if optional_method and exc.code == METHOD_NOT_FOUND:
                return []
            raise

    listings = (
        listing(
            caps.tools,
            "tools/list",
            lambda c: client.list_tools(cursor=c, cache_mode="bypass"),
            lambda p: p.tools,
        ),
        listing(
            caps.resources,
            "resources/list",
            lambda c: client.list_resources(cursor=c, cache_mode="bypass"),
            lambda p: p.resources,
        ),
        listing(
            caps.resources,
            "resources/templates/list",
            lambda c: client.list_resource_templates(cursor=c, cache_mode="bypass"),
            lambda p: p.resource_templates,
            optional_method=True,
        ),
        listing(
            caps.prompts,
            "prompts/list",
            lambda c: client.list_prompts(cursor=c, cache_mode="bypass"),
            lambda p: p.prompts,
        ),
    )
    # gather(return_exceptions=True) rather than a TaskGroup: a failure must surface as the original
    # exception (MCPError, ValidationError...) for the caller to classify, not wrapped in an ExceptionGroup.
    results = await asyncio.gather(*listings, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    tool_list, resource_list, template_list, prompt_list = results  # type: ignore[misc]
    info = client.server_info
    return DiscoveredCapabilities(
        protocol_version=client.protocol_version,
        era=era_of(client.protocol_version),
        server_info=dump(info) if info is not None else None,
        instructions=client.instructions,
        capabilities=dump(caps),
        tools=tool_list,  # type: ignore[arg-type]
        resources=resource_list,  # type: ignore[arg-type]
        resource_templates=template_list,  # type: ignore[arg-type]
        prompts=prompt_list,  # type: ignore[arg-type]
        truncated=truncated,
    )
