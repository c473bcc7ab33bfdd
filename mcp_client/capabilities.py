"""Full, fresh discovery of what an MCP server offers, bounded.

Everything is dumped to plain JSON-able dicts (`by_alias=True`, so `inputSchema`/`outputSchema` keep their
wire names) because the registry stores them and the UI renders them; nothing downstream should need the
SDK's pydantic models.

A server decides how much it lists, so discovery keeps at most `CapabilityLimits` of it: a count and a byte budget
per list, a byte cap per entry, a page cap. What was cut is reported (`DiscoveredCapabilities.truncation`) rather
than hidden, so the registry can say "showing 1,000 of more than 5,000 tools".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mcp import Client, MCPError
from mcp_types import METHOD_NOT_FOUND
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

Era = Literal["modern", "handshake"]
"""`modern`: 2026-07-28+ (server/discover, stateless requests, no ping). `handshake`: initialize-era
(2025-11-25 and older), where ping and resources/subscribe exist."""

DEFAULT_PAGE_CAP = 50
"""Max pages per listing: a server whose cursor never ends must not hang discovery."""

DROPPED_NAMES_KEPT = 20
"""Oversized entries named in a truncation report (the rest are only counted): the report is bounded too."""

LISTINGS: dict[str, str] = {
    "tools": "tools",
    "resources": "resources",
    "resource_templates": "resource templates",
    "prompts": "prompts",
}
"""Each list of a discovery (its field name) and how people call it."""

TruncationReason = Literal["", "count", "bytes", "pages", "cursor_loop"]


@dataclass(frozen=True)
class CapabilityLimits:
    """How much of a server's lists one discovery keeps (the registry fills it from the MCP_MAX_CAPABILIT* settings).

    Frozen and compared by value: it is part of a `ServerTarget`, whose equality decides whether a session restarts.
    """

    max_items: int = 1_000  # entries kept per list: MCP_MAX_CAPABILITIES_PER_LIST
    max_item_bytes: int = 64 * 1024  # one entry's JSON: MCP_MAX_CAPABILITY_BYTES
    max_list_bytes: int = 4 * 1024 * 1024  # the kept entries' JSON of one list together: MCP_MAX_CAPABILITY_LIST_BYTES
    max_pages: int = DEFAULT_PAGE_CAP

    def __post_init__(self) -> None:
        for name in ("max_items", "max_item_bytes", "max_list_bytes", "max_pages"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"CapabilityLimits.{name} must be a positive integer, got {value!r}")


@dataclass
class ListTruncation:
    """What one discovery left out of one list: why paging stopped early, and entries dropped for their size."""

    listing: str  # a key of LISTINGS
    kept: int
    seen: int  # entries the server sent before paging stopped (kept, dropped and not kept)
    more: bool  # the server offered another page when paging stopped, so it has more than `seen`
    reason: TruncationReason  # why paging stopped early; "" when the list was complete but entries were dropped
    limit: int | None = None  # the limit that stopped paging (a count, bytes or pages)
    setting: str = ""  # the setting that holds that limit
    dropped_count: int = 0  # entries over MCP_MAX_CAPABILITY_BYTES, each left out
    dropped: list[dict[str, Any]] = field(default_factory=list)  # the first few: {"name", "bytes"}
    dropped_limit: int | None = None
    message: str = ""

    def __post_init__(self) -> None:
        if not self.message:
            self.message = self.describe()

    def describe(self) -> str:
        label = LISTINGS.get(self.listing, self.listing)
        sentences = []
        if self.reason:
            total = f"more than {self.seen:,}" if self.more else f"{self.seen:,}"
            shown = f"showing {self.kept:,} of {total} {label}"
            if self.reason == "count":
                why = f"the rest were not kept (limit {self.setting} = {self.limit:,})"
            elif self.reason == "bytes":
                why = f"the rest were not kept (their JSON passed {self.setting} = {self.limit:,} bytes)"
            elif self.reason == "pages":
                why = f"its pages were not followed past {self.limit:,}"
            else:
                why = "the server repeated a page cursor, so paging stopped"
            sentences.append(f"{shown}; {why}")
        if self.dropped_count:
            names = ", ".join(f"{entry['name']} ({entry['bytes']:,} bytes)" for entry in self.dropped)
            more = (
                f" and {self.dropped_count - len(self.dropped):,} more"
                if self.dropped_count > len(self.dropped)
                else ""
            )
            what = label[:-1] if self.dropped_count == 1 else label
            sentences.append(
                f"{self.dropped_count:,} {what} dropped: each entry's JSON over MCP_MAX_CAPABILITY_BYTES = "
                f"{self.dropped_limit or 0:,} bytes ({names}{more})"
            )
        return "; ".join(sentences)


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
    # The lists that lost something to the limits (by field name); lists kept whole are absent.
    truncation: dict[str, ListTruncation] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def tool_names(self) -> list[str]:
        return [tool["name"] for tool in self.tools]

    @property
    def truncated(self) -> list[str]:
        """The lists cut short or missing entries."""
        return list(self.truncation)

    def truncation_dict(self) -> dict[str, dict[str, Any]]:
        """The truncation report as stored with a snapshot and shown by the API."""
        return {listing: asdict(report) for listing, report in self.truncation.items()}


def _entry_name(item: BaseModel) -> str:
    """How a dropped entry is named in its report: its name (or URI), cut short, since the name may be the big part."""
    name = getattr(item, "name", None) or getattr(item, "uri", None) or getattr(item, "uri_template", None) or "?"
    # Printable only: the report goes into a log line and onto pages.
    name = "".join(char if char.isprintable() else "?" for char in str(name)[:80])
    return name if len(name) < 80 else name[:77] + "..."


async def _bounded_pages(
    listing: str,
    fetch: Callable[[str | None], Awaitable[Any]],
    items_of: Callable[[Any], list[BaseModel]],
    limits: CapabilityLimits,
) -> tuple[list[dict[str, Any]], ListTruncation | None]:
    """Follow next_cursor until the listing ends or a limit is hit; keep what fits, count what does not.

    Paging stops at the page where a limit was reached: the entries after it on that page are counted (they are
    already parsed) but neither dumped nor kept, and no further page is asked for.
    """
    items: list[dict[str, Any]] = []
    list_bytes = 0
    seen = 0
    dropped: list[dict[str, Any]] = []
    dropped_count = 0
    reason: TruncationReason = ""
    more = False
    cursor: str | None = None
    cursors: set[str] = set()
    for page_number in range(1, limits.max_pages + 1):
        page = await fetch(cursor)
        for item in items_of(page):
            seen += 1
            if reason:
                continue
            if len(items) >= limits.max_items:
                reason = "count"
                continue
            entry = dump(item)
            size = len(json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode())
            if size > limits.max_item_bytes:
                dropped_count += 1
                if len(dropped) < DROPPED_NAMES_KEPT:
                    dropped.append({"name": _entry_name(item), "bytes": size})
                continue
            if list_bytes + size > limits.max_list_bytes:
                reason = "bytes"
                continue
            items.append(entry)
            list_bytes += size
        cursor = page.next_cursor
        if cursor is None:
            break
        if not reason and len(items) >= limits.max_items:
            reason = "count"  # full, and the server has more: no reason to ask for it
        if reason:
            more = True
            break
        if cursor in cursors:  # a paginator that loops would otherwise duplicate entries up to the cap
            reason = "cursor_loop"
            break
        cursors.add(cursor)
        if page_number == limits.max_pages:
            reason, more = "pages", True
    if not reason and not dropped_count:
        return items, None
    limit, setting = {
        "count": (limits.max_items, "MCP_MAX_CAPABILITIES_PER_LIST"),
        "bytes": (limits.max_list_bytes, "MCP_MAX_CAPABILITY_LIST_BYTES"),
        "pages": (limits.max_pages, "the page cap"),
    }.get(reason, (None, ""))
    report = ListTruncation(
        listing=listing,
        kept=len(items),
        seen=seen,
        more=more,
        reason=reason,
        limit=limit,
        setting=setting,
        dropped_count=dropped_count,
        dropped=dropped,
        dropped_limit=limits.max_item_bytes if dropped_count else None,
    )
    return items, report


async def fetch_capabilities(client: Client, *, limits: CapabilityLimits | None = None) -> DiscoveredCapabilities:
    """List tools, resources, resource templates and prompts of a connected client, all pages within the limits,
    uncached.

    Only what the server declares in its capabilities is listed, so a server without prompts gives an empty
    prompts list instead of a -32601 error. The listings run concurrently on the one session (each one's
    pages in order), which roughly divides discovery latency by the number of listings.
    """
    limits = limits or CapabilityLimits()
    caps = client.server_capabilities
    truncation: dict[str, ListTruncation] = {}

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
            items, report = await _bounded_pages(what, fetch, items_of, limits)
        except MCPError as exc:
            # Templates are optional within the resources capability; older servers don't implement the method.
            if optional_method and exc.code == METHOD_NOT_FOUND:
                return []
            raise
        if report is not None:
            truncation[what] = report
        return items

    listings = (
        listing(
            caps.tools,
            "tools",
            lambda c: client.list_tools(cursor=c, cache_mode="bypass"),
            lambda p: p.tools,
        ),
        listing(
            caps.resources,
            "resources",
            lambda c: client.list_resources(cursor=c, cache_mode="bypass"),
            lambda p: p.resources,
        ),
        listing(
            caps.resources,
            "resource_templates",
            lambda c: client.list_resource_templates(cursor=c, cache_mode="bypass"),
            lambda p: p.resource_templates,
            optional_method=True,
        ),
        listing(
            caps.prompts,
            "prompts",
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
        # In listing order, whichever finished first.
        truncation={name: truncation[name] for name in LISTINGS if name in truncation},
    )
