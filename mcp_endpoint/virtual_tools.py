"""The virtual tools of `/mcp/`: what the fleet does together, offered beside each server's own `<server>__<tool>`.

- `fused__<tool>`: a tool offered by at least two servers of one type, asked of all of them at once and fused
  (fusion's one path: `fusion.query.parse_query` -> `fusion.engine.run_query_async`, the same validation and the
  same run as POST /api/fusion/query/). None for a tool that changes state (`fusion.tool_safety`'s rule).
- `balanced__<tool>`: the same tool called on the best of those servers, failing over to the next within the
  caller's deadline (`coordinator.balanced_calls.parse_call` -> `balanced_call_async`, as POST
  /api/coordinator/call/). For a tool that changes state the `idempotency_key` argument is required: a failover
  after a lost reply must not act twice.
- `coordinator__arbitrage`: the arbitrage analysis across the exchanges (`parse_request` -> `run_arbitrage`, as POST
  /api/coordinator/arbitrage/), when at least two servers offer get_quote and get_order_book; stored as an operation.
- `coordinator__execute_opportunity`: executing an analysed opportunity (a two-phase transaction through
  `coordinator.submissions.transaction_submit`, as POST /api/coordinator/transactions/), offered only when an admin
  sets `MCP_ENDPOINT_TRANSACTION_TOOLS = True`.

Server types: a tool name counts per `server_type`. When it qualifies in one type only, the virtual tools ask that
type (their `server_type` argument is optional, with that one value). When it qualifies in several (two `quotes`
servers and two `exchange` servers both offer get_quote), `server_type` is required, an enum of those types: the
agent chooses which servers answer together; naming `servers` (all of one type) chooses too.

The upstream's arguments go under `arguments`, with the upstream's own input schema (that of the first server that
will be asked, in the catalogue's order: by name, as it carries no priority); the options of fusion or of the
balancer sit beside it. Each path checks the arguments against every asked server's own schema when it runs.

Every call answers a `CallToolResult` with structured content and the same JSON as text; a refused or failed call is
`isError` with a sentence naming what is wrong (a bad field by its name, as the REST API's 400 does). Only
cancellation is raised. Viewers call none of these (an analysis or a call is stored as an operation).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import mcp_types
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from coordinator.arbitrage_workflow import MAX_SYMBOLS, QUOTE_TOOLS, SYMBOL, parse_request, run_arbitrage
from coordinator.balanced_calls import balanced_call_async, parse_call
from coordinator.errors import RequestError
from fleet.calls import FleetTimedOut
from fusion.engine import run_query_async
from fusion.query import MAX_FIELDS, MAX_SOURCES, QueryError, parse_query
from fusion.strategies import all_strategies
from fusion.tool_safety import state_changing_reason, state_changing_servers
from mcp_client import Deadline
from mcp_client.results import NoResultValue, ToolCallResult, result_value
from orchestrator_site.async_api import Caller
from orchestrator_site.database_access import with_database
from registry.models import Server
from registry.permissions import Role

if TYPE_CHECKING:
    from mcp_endpoint.fleet_catalogue import OfferedServer

logger = logging.getLogger(__name__)

FUSED_PREFIX = "fused__"
BALANCED_PREFIX = "balanced__"
COORDINATOR_PREFIX = "coordinator__"
ARBITRAGE_TOOL = "coordinator__arbitrage"
EXECUTE_TOOL = "coordinator__execute_opportunity"
VIRTUAL_PREFIXES = (FUSED_PREFIX, BALANCED_PREFIX, COORDINATOR_PREFIX)

# MCP tool names: 1 to 128 of these characters (the spec's recommendation, which SDK clients warn about); an
# upstream tool whose virtual name would not be one gets no virtual tool rather than a name clients reject.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
# What an arbitrage analysis needs besides the fetches' timeout: the analysis and the operation's writes.
_ARBITRAGE_SLACK_SECONDS = 1.0
# The least time worth starting a call with; less, and the answer is that the caller's deadline has passed.
_LEAST_SECONDS = 0.05

FUSION_OPTIONS = ("strategy", "options", "fields", "quorum", "timeout_seconds")
BALANCED_OPTIONS = ("timeout_seconds", "idempotency_key")
CHOOSING = ("servers", "server_type")


@dataclass(frozen=True)
class Offering:
    """One tool name offered by at least two servers of one server type (or of several types)."""

    tool: str
    servers_by_type: dict[str, tuple[str, ...]]  # only the types where at least two servers offer it
    definition: Mapping[str, Any]  # the first offering server's tool, as discovered (wire format)
    state_changing: str = ""  # why it changes state (from the annotations), "" when it does not say so

    @property
    def types(self) -> list[str]:
        return sorted(self.servers_by_type)

    @property
    def servers(self) -> list[str]:
        return [name for names in self.servers_by_type.values() for name in names]

    @property
    def ambiguous(self) -> bool:
        return len(self.servers_by_type) > 1


@dataclass
class _Grouping:
    by_type: dict[str, list[str]] = field(default_factory=dict)
    definitions: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # server -> its tool
    state_changing: str = ""


def offerings(servers: Iterable[OfferedServer]) -> dict[str, Offering]:
    """Tool name -> who offers it, for the names at least two servers of one type offer."""
    grouped: dict[str, _Grouping] = {}
    for server in servers:
        for tool in server.tools:
            name = tool.get("name") if isinstance(tool, Mapping) else None
            if not isinstance(name, str) or not name:
                continue
            group = grouped.setdefault(name, _Grouping())
            offering_servers = group.by_type.setdefault(server.server_type, [])
            if server.name in offering_servers:
                continue
            offering_servers.append(server.name)
            group.definitions[server.name] = tool
            group.state_changing = group.state_changing or state_changing_reason(
                server.name, tool.get("annotations"), None, name
            )
    found: dict[str, Offering] = {}
    for name, group in grouped.items():
        qualifying = {kind: tuple(names) for kind, names in group.by_type.items() if len(names) >= 2}
        if not qualifying:
            continue
        # The schema of the first server that will be asked (not of a lone one of another type).
        first = next(iter(qualifying.values()))[0]
        found[name] = Offering(name, qualifying, group.definitions[first], group.state_changing)
    return found


def arbitrage_servers(servers: Iterable[OfferedServer]) -> list[str]:
    """The servers an arbitrage analysis can ask: those offering both get_quote and get_order_book (any type, as
    `coordinator.arbitrage_workflow.candidate_servers` chooses them)."""
    able: list[str] = []
    for server in servers:
        names = {tool.get("name") for tool in server.tools if isinstance(tool, Mapping)}
        if set(QUOTE_TOOLS) <= names and server.name not in able:
            able.append(server.name)
    return able


def transaction_tools_enabled() -> bool:
    return bool(settings.MCP_ENDPOINT_TRANSACTION_TOOLS)


def is_virtual(name: str) -> bool:
    return name.startswith(VIRTUAL_PREFIXES)


# ---------------------------------------------------------------------------------------------------------------
# The tools as listed


# Where a JSON schema keeps the definitions its `$ref`s point at ("#/$defs/Name"): from the document's root.
_DEFINITIONS = ("$defs", "definitions")


def _upstream_arguments_schema(offering: Offering) -> dict[str, Any]:
    """The upstream's input schema for `arguments`, without its definitions (see `_with_upstream_definitions`)."""
    schema = offering.definition.get("inputSchema")
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        schema = {"type": "object"}
    return {
        **{key: value for key, value in schema.items() if key not in _DEFINITIONS},
        "description": f"The arguments of {offering.tool}, passed to each server as they are (its input schema).",
    }


def _with_upstream_definitions(schema: dict[str, Any], offering: Offering) -> dict[str, Any]:
    """The upstream schema's `$defs` moved to the root of ours: its `$ref`s ("#/$defs/Order") are read from the
    root of the document, and under `properties.arguments` they would point at nothing."""
    upstream = offering.definition.get("inputSchema")
    if isinstance(upstream, Mapping):
        for key in _DEFINITIONS:
            if isinstance(upstream.get(key), Mapping):
                schema[key] = dict(upstream[key])
    return schema


def _named(names: Sequence[str], shown: int = 5) -> str:
    """A few names for a description (the enum in the schema has them all): a fleet of hundreds stays readable."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def _upstream_requires_arguments(offering: Offering) -> bool:
    schema = offering.definition.get("inputSchema")
    return isinstance(schema, Mapping) and bool(schema.get("required"))


def _choosing_properties(offering: Offering) -> dict[str, Any]:
    if offering.ambiguous:
        type_help = (
            f"Which servers answer together: {offering.tool} is offered by servers of several types "
            f"({', '.join(offering.types)}); required unless `servers` names servers of one type."
        )
    else:
        type_help = f"The one type whose servers offer {offering.tool} ({offering.types[0]}); may be left out."
    return {
        "server_type": {"type": "string", "enum": offering.types, "description": type_help},
        "servers": {
            "type": "array",
            "items": {"type": "string", "enum": offering.servers},
            "minItems": 1,
            "maxItems": MAX_SOURCES,
            "uniqueItems": True,
            "description": (
                "Only these servers (all of one type); default: every enabled server of the type offering it. "
                "Leave one out to exclude it."
            ),
        },
    }


def _required(offering: Offering, *also: str) -> list[str]:
    required = ["arguments"] if _upstream_requires_arguments(offering) else []
    if offering.ambiguous:
        required.append("server_type")
    return [*required, *also]


def _strategy_help() -> str:
    return " ".join(f"{strategy.name}: {strategy.description}" for strategy in all_strategies())


def fused_input_schema(offering: Offering) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "arguments": _upstream_arguments_schema(offering),
            "strategy": {
                "type": "string",
                "enum": [strategy.name for strategy in all_strategies()],
                "default": settings.FUSION_DEFAULT_STRATEGY,
                "description": "How the answers are fused. " + _strategy_help(),
            },
            "options": {
                "type": "object",
                "description": "The strategy's options (e.g. median: threshold, min_scale_bps); default: its own.",
            },
            "fields": {
                "type": "array",
                "items": {"type": "string"},
                "maxItems": MAX_FIELDS,
                "uniqueItems": True,
                "description": (
                    'Field paths of the answers to fuse, e.g. ["bid", "ask"] or ["data.price"]; default: '
                    "the whole answer."
                ),
            },
            "quorum": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_SOURCES,
                "default": 1,
                "description": "How many valid answers are needed for a fused value.",
            },
            "timeout_seconds": {
                "type": "number",
                "minimum": 0.01,
                "maximum": 300,
                "default": settings.FUSION_DEFAULT_TIMEOUT_SECONDS,
                "description": "Per source; a late source is reported, not waited for. Capped by your deadline.",
            },
            **_choosing_properties(offering),
        },
        "required": _required(offering),
        "additionalProperties": False,
    }
    return _with_upstream_definitions(schema, offering)


_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NULLABLE_TEXT = {"type": ["string", "null"]}

FUSED_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "run_id": {"type": "integer", "description": "The stored run: /api/fusion/runs/<run_id>/ explains it."},
        "value": {"description": "The fused value (an object of the fields, or the whole answer); null if none."},
        "confidence": {**_NULLABLE_NUMBER, "description": "0 to 1: how far the sources agree and count."},
        "strategy": {"type": "string"},
        "quorum": {"type": "integer"},
        "quorum_met": {"type": "boolean"},
        "sources": {
            "type": "array",
            "description": "Per server asked: what it answered and how it counted.",
            "items": {
                "type": "object",
                "properties": {
                    "server": {"type": "string"},
                    "state": {
                        "type": "string",
                        "description": "used, excluded (an outlier, invalid, in maintenance), failed or timed out",
                    },
                    "value": {"description": "What it answered (the fused fields), if usable."},
                    "weight": {"type": ["object", "null"], "description": "trust x health x latency x freshness"},
                    "latency_ms": _NULLABLE_NUMBER,
                    "reason": {**_NULLABLE_TEXT, "description": "Why it was not used."},
                    "status": _NULLABLE_TEXT,
                },
                "required": ["server", "state"],
            },
        },
        "fields": {"type": "object", "description": "Per fused field: value, method, dispersion, interval."},
        "explanation": {**_NULLABLE_TEXT, "description": "What the strategy decided, in a sentence."},
        "error": {**_NULLABLE_TEXT, "description": "Why there is no usable value (then isError is true)."},
    },
    "required": ["run_id", "value", "confidence", "strategy", "quorum_met", "sources", "explanation"],
}


def fused_tool(offering: Offering) -> mcp_types.Tool:
    return mcp_types.Tool(
        name=FUSED_PREFIX + offering.tool,
        title=f"{offering.tool}, fused across servers",
        description=(
            f"Asks every server offering {offering.tool} ({_named(offering.servers)}) the same question at once "
            "and fuses their answers by a strategy (median with outlier rejection by default). Gives the fused "
            "value, a confidence, whether the quorum was met, and per server its state (used, excluded with the "
            "reason, failed, timed out), value, weight and latency. Pass the tool's own arguments under "
            "`arguments`; `fields` picks the numbers to fuse."
        ),
        input_schema=fused_input_schema(offering),
        output_schema=FUSED_OUTPUT_SCHEMA,
        annotations=mcp_types.ToolAnnotations(
            title=f"{offering.tool}, fused", read_only_hint=True, destructive_hint=False, open_world_hint=True
        ),
    )


def balanced_input_schema(offering: Offering) -> dict[str, Any]:
    key_help = "Passed on to the server with the call, so that a retry or a failover acts once."
    if offering.state_changing:
        key_help = f"Required: {offering.tool} changes state ({offering.state_changing}). " + key_help
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "arguments": _upstream_arguments_schema(offering),
            "timeout_seconds": {
                "type": "number",
                "minimum": 0.01,
                "maximum": 300,
                "default": 10.0,
                "description": "For the call and every failover together. Capped by your deadline.",
            },
            "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200, "description": key_help},
            **_choosing_properties(offering),
        },
        "required": _required(offering, *(["idempotency_key"] if offering.state_changing else [])),
        "additionalProperties": False,
    }
    return _with_upstream_definitions(schema, offering)


BALANCED_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "server": {**_NULLABLE_TEXT, "description": "The server that answered."},
        "result": {
            "type": ["object", "array", "string", "number", "boolean", "null"],
            "description": "The server's structured content, else the JSON its text carries, else the text itself.",
        },
        "upstream_is_error": {
            "type": ["boolean", "null"],
            "description": "The server answered with a tool error (the answer is then isError too).",
        },
        "attempts": {
            "type": "array",
            "description": "Every server tried, in order.",
            "items": {
                "type": "object",
                "properties": {
                    "server": {"type": "string"},
                    "ok": {"type": "boolean"},
                    "latency_ms": _NULLABLE_NUMBER,
                    "error": _NULLABLE_TEXT,
                },
                "required": ["server", "ok"],
            },
        },
        "excluded": {"type": "array", "description": "Servers not tried (in maintenance), with the reason."},
        "operation_id": {"type": "integer", "description": "The stored operation: /api/coordinator/operations/<id>/."},
        "latency_ms": _NULLABLE_NUMBER,
        "error": _NULLABLE_TEXT,
    },
    "required": ["server", "result", "attempts", "operation_id"],
}


def _upstream_annotations(offering: Offering) -> mcp_types.ToolAnnotations | None:
    annotations = offering.definition.get("annotations")
    if not isinstance(annotations, Mapping):
        return None
    try:
        return mcp_types.ToolAnnotations.model_validate(dict(annotations))
    except ValueError:  # what a server sends is untrusted: a malformed annotation is not copied
        return None


def balanced_tool(offering: Offering) -> mcp_types.Tool:
    changes = (
        f" {offering.tool} changes state: give an idempotency_key (the server acts once per key)."
        if offering.state_changing
        else ""
    )
    return mcp_types.Tool(
        name=BALANCED_PREFIX + offering.tool,
        title=f"{offering.tool}, load-balanced",
        description=(
            f"Calls {offering.tool} on the best of the servers offering it ({_named(offering.servers)}: "
            "by latency, load, errors and status), failing over to the next one within the deadline. Gives the "
            "answering server, its result, and every attempt." + changes
        ),
        input_schema=balanced_input_schema(offering),
        output_schema=BALANCED_OUTPUT_SCHEMA,
        annotations=_upstream_annotations(offering),
    )


def arbitrage_input_schema(servers: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "symbols": {
                "type": "array",
                "items": {"type": "string", "pattern": SYMBOL.pattern},
                "minItems": 1,
                "maxItems": MAX_SYMBOLS,
                "uniqueItems": True,
                "description": 'Symbols of the form BASE-QUOTE, e.g. ["BTC-USD"].',
            },
            "size": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e9, "description": "The size to trade."},
            "min_profit_bps": {
                "type": "number",
                "minimum": -10_000,
                "maximum": 10_000,
                "default": 0.0,
                "description": "The least net profit (basis points) worth reporting.",
            },
            "servers": {
                "type": "array",
                "items": {"type": "string", "enum": list(servers)},
                "minItems": 2,
                "uniqueItems": True,
                "description": "Only these exchanges; default: every enabled one offering get_quote and "
                "get_order_book (those in maintenance are left out and listed in `excluded`).",
            },
            "slippage_bps": {"type": "number", "minimum": 0, "maximum": 1_000, "default": 2.0},
            "max_age_seconds": {
                "type": "number",
                "minimum": 0.1,
                "maximum": 3_600,
                "default": 10.0,
                "description": "Quotes older than this are left out as stale.",
            },
            "depth": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
            "timeout_seconds": {
                "type": "number",
                "minimum": 0.1,
                "maximum": 60,
                "default": 5.0,
                "description": "For the quotes and books of each exchange. Capped by your deadline.",
            },
        },
        "required": ["symbols", "size"],
        "additionalProperties": False,
    }


ARBITRAGE_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "operation_id": {
            "type": "integer",
            "description": "The stored analysis; coordinator__execute_opportunity (when enabled) takes it.",
        },
        "state": {"type": "string"},
        "error": _NULLABLE_TEXT,
        "opportunities": {
            "type": "array",
            "description": (
                "Best first: symbol, buy_on, sell_on, buy_price, sell_price, size, gross_profit, fees, slippage, "
                "net_profit (= gross_profit - fees - slippage), net_bps."
            ),
            "items": {
                "type": "object",
                "properties": {
                    "symbol": {"type": "string"},
                    "buy_on": {"type": "string"},
                    "sell_on": {"type": "string"},
                    "net_profit": {"type": "number"},
                    "net_bps": {"type": "number"},
                },
            },
        },
        "quotes": {"type": "array", "description": "The quotes and books used."},
        "pairs": {"type": "array", "description": "Every ordered pair analysed, above the minimum or not."},
        "excluded": {"type": "array", "description": "Quotes left out: stale, or the exchange in maintenance."},
        "failures": {"type": "array", "description": "Exchanges and symbols that could not be fetched, and why."},
        "servers": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["operation_id", "state", "opportunities"],
}


def arbitrage_tool(servers: Sequence[str]) -> mcp_types.Tool:
    return mcp_types.Tool(
        name=ARBITRAGE_TOOL,
        title="Cross-exchange arbitrage analysis",
        description=(
            f"Fetches quotes and order books for the symbols from every exchange ({_named(servers)}) at once, "
            "works out every ordered pair's net profit for the size after both taker fees and a slippage "
            "allowance, and gives the opportunities above min_profit_bps, best first, with the stored operation's "
            "id. Analysis only: nothing is traded."
        ),
        input_schema=arbitrage_input_schema(servers),
        output_schema=ARBITRAGE_OUTPUT_SCHEMA,
        annotations=mcp_types.ToolAnnotations(
            title="Arbitrage analysis", read_only_hint=True, destructive_hint=False, open_world_hint=True
        ),
    )


EXECUTE_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "operation_id": {"type": "integer", "description": "The analysis (coordinator__arbitrage's operation_id)."},
        "opportunity": {
            "type": "integer",
            "minimum": 0,
            "default": 0,
            "description": "The index of the opportunity in the analysis (0: the best).",
        },
        "max_age_seconds": {
            "type": "number",
            "minimum": 0.1,
            "description": "Refuse when the opportunity's quotes are older than this (default: the setting).",
        },
        "max_slippage_bps": {"type": "number", "minimum": 0, "description": "The limit prices' room, in bps."},
        "idempotency_key": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "pattern": "^[!-~]+$",
            "description": "Required: a retry with the same key answers the first transaction instead of trading "
            "again (a random UUID per execution will do).",
        },
    },
    "required": ["operation_id", "idempotency_key"],
    "additionalProperties": False,
}


def execute_tool() -> mcp_types.Tool:
    return mcp_types.Tool(
        name=EXECUTE_TOOL,
        title="Execute an analysed arbitrage opportunity",
        description=(
            "Trades: reserves the buy and the sell on both exchanges, then commits both or cancels both (a "
            "two-phase transaction with a durable log). Refused when the quotes are stale, an exchange is not "
            "online, or the opportunity was already executed. Gives the transaction with its state "
            "(committed, aborted: nothing moved, or in_doubt: still finishing) and its fills."
        ),
        input_schema=EXECUTE_INPUT_SCHEMA,
        output_schema={
            "type": "object",
            "properties": {"id": {"type": "integer"}, "state": {"type": "string"}},
            "required": ["id", "state"],
        },
        annotations=mcp_types.ToolAnnotations(
            title="Execute an opportunity",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=True,
            open_world_hint=True,
        ),
    )


def virtual_tools(servers: list[OfferedServer]) -> list[mcp_types.Tool]:
    """The virtual tools the enabled servers make possible, whatever their status (no I/O: from the catalogue's
    snapshot)."""
    tools: list[mcp_types.Tool] = []
    for name, offering in sorted(offerings(servers).items()):
        if not _TOOL_NAME.fullmatch(BALANCED_PREFIX + name):
            continue
        if not offering.state_changing:
            tools.append(fused_tool(offering))
        tools.append(balanced_tool(offering))
    able = arbitrage_servers(servers)
    if len(able) >= 2:
        tools.append(arbitrage_tool(able))
        if transaction_tools_enabled():
            tools.append(execute_tool())
    return tools


# ---------------------------------------------------------------------------------------------------------------
# Calling them


def _json_text(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)


def answered(structured: dict[str, Any], *, is_error: bool = False) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(text=_json_text(structured))],
        structured_content=structured,
        is_error=is_error,
    )


def refused(message: str, errors: Mapping[str, list[str]] | None = None, **details: Any) -> mcp_types.CallToolResult:
    """A call that cannot run: isError with the sentence (and, for bad fields, each field's messages)."""
    structured: dict[str, Any] = {"error": message, **details}
    if errors:
        structured["fields"] = {name: list(messages) for name, messages in errors.items()}
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(text=message)], structured_content=structured, is_error=True
    )


def _field_errors(errors: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())


def _bad_fields(errors: Mapping[str, list[str]]) -> mcp_types.CallToolResult:
    return refused(_field_errors(errors), errors)


def _unknown_arguments(arguments: Mapping[str, Any], allowed: Iterable[str]) -> mcp_types.CallToolResult | None:
    unknown = sorted(set(arguments) - set(allowed))
    if not unknown:
        return None
    expected = f"Unknown argument; expected some of: {', '.join(sorted(allowed))}."
    return _bad_fields({name: [expected] for name in unknown})


@dataclass(frozen=True)
class _Chosen:
    """Whom to ask: named servers, or every server of one type."""

    servers: list[Any] = field(default_factory=list)  # names (or what was sent, for the path to name what is wrong)
    server_type: str = ""

    def body(self) -> dict[str, Any]:
        return {"servers": self.servers} if self.servers else {"server_type": self.server_type}


def _choose(offering: Offering, arguments: Mapping[str, Any]) -> _Chosen | dict[str, list[str]]:
    """The servers a virtual call asks, or the fields that make the choice wrong. A list of `servers` that are not
    all names is passed on as it is, for the path's own validation to name what is wrong."""
    server_type = arguments.get("server_type")
    if server_type is not None and (not isinstance(server_type, str) or server_type not in offering.servers_by_type):
        return {"server_type": [f"One of: {', '.join(offering.types)}."]}
    servers = arguments.get("servers")
    if servers is not None and not isinstance(servers, list):
        # Not passed on: the paths also take "a,b" for a list, which would skip the check of whom below.
        return {"servers": ["A list of server names."]}
    if servers and all(isinstance(name, str) for name in servers):
        type_of = {name: kind for kind, names in offering.servers_by_type.items() for name in names}
        strangers = [name for name in servers if name not in type_of]
        if strangers:
            return {
                "servers": [
                    f"Not among the servers of one type offering {offering.tool} ({_named(offering.servers)}): "
                    f"{_named(strangers)}."
                ]
            }
        kinds = {type_of[name] for name in servers}
        if server_type is not None and kinds != {server_type}:
            return {"servers": [f"Not all of server_type {server_type}."]}
        if len(kinds) > 1:
            return {"servers": [f"Servers of several types ({', '.join(sorted(kinds))}): name servers of one type."]}
        return _Chosen(servers=list(servers))
    if servers:
        return _Chosen(servers=servers)
    if server_type is None:
        if offering.ambiguous:
            return {
                "server_type": [
                    f"Required: {offering.tool} is offered by servers of several types ({', '.join(offering.types)})."
                ]
            }
        server_type = offering.types[0]
    return _Chosen(server_type=server_type)


def _no_time_left(deadline: Deadline) -> mcp_types.CallToolResult | None:
    if deadline.remaining() < _LEAST_SECONDS:
        return refused("The request's deadline has passed: nothing was asked.")
    return None


async def call_fused(
    offering: Offering, arguments: Mapping[str, Any], caller: Caller, deadline: Deadline
) -> mcp_types.CallToolResult:
    if offering.state_changing:
        return refused(
            f"{offering.tool} changes state ({offering.state_changing}): it is not fanned out to every server; "
            f"use {BALANCED_PREFIX}{offering.tool} with an idempotency_key."
        )
    unknown = _unknown_arguments(arguments, ("arguments", *FUSION_OPTIONS, *CHOOSING))
    if unknown is not None:
        return unknown
    chosen = _choose(offering, arguments)
    if isinstance(chosen, dict):
        return _bad_fields(chosen)
    body = {
        "tool": offering.tool,
        "arguments": arguments.get("arguments", {}),
        **{name: arguments[name] for name in FUSION_OPTIONS if name in arguments},
        **chosen.body(),
    }
    try:
        query = parse_query(body)
    except QueryError as exc:
        return _bad_fields(exc.errors)
    late = _no_time_left(deadline)
    if late is not None:
        return late
    # The caller's deadline bounds the fan-out: each source's timeout and the whole run's.
    remaining = deadline.remaining()
    query = dataclasses.replace(
        query,
        timeout_seconds=min(query.timeout_seconds, remaining),
        deadline_seconds=min(query.deadline_seconds, remaining),
    )
    try:
        answer = await run_query_async(query, caller=caller.username)
    except QueryError as exc:  # found when planning: an unknown server, arguments a server's schema refuses
        return _bad_fields(exc.errors)
    structured = {**answer, "explanation": answer.get("decision")}
    return answered(structured, is_error=bool(answer.get("error")))


def _metadata_says_state_changing(servers: Sequence[str], server_type: str, tool: str) -> str:
    """Why `tool` changes state on one of the servers asked, by the operator's word in a server's metadata (the
    annotations were read when the tool was listed)."""
    rows = Server.objects.filter(enabled=True).only("pk", "name", "metadata")
    rows = rows.filter(name__in=servers) if servers else rows.filter(server_type=server_type)
    return next(iter(state_changing_servers(rows, tool).values()), "")


def _upstream_value(result: Mapping[str, Any] | None) -> Any:
    """The answering server's value, read as every reader of a tool result reads it (`result_value`: structured
    content, else the JSON in the first text), else its text (an error's text, plain-text answers)."""
    if result is None:
        return None
    reply = ToolCallResult(
        content=list(result.get("content") or []),
        structured_content=result.get("structured_content"),
        is_error=bool(result.get("is_error")),
    )
    try:
        return result_value(reply)
    except NoResultValue as unreadable:
        return unreadable.text


async def call_balanced(
    offering: Offering, arguments: Mapping[str, Any], caller: Caller, deadline: Deadline
) -> mcp_types.CallToolResult:
    unknown = _unknown_arguments(arguments, ("arguments", *BALANCED_OPTIONS, *CHOOSING))
    if unknown is not None:
        return unknown
    chosen = _choose(offering, arguments)
    if isinstance(chosen, dict):
        return _bad_fields(chosen)
    body = {
        "tool": offering.tool,
        "arguments": arguments.get("arguments", {}),
        **{name: arguments[name] for name in BALANCED_OPTIONS if name in arguments},
        **chosen.body(),
    }
    try:
        call = parse_call(body)
    except RequestError as exc:
        return _bad_fields(exc.errors)
    if not call["idempotency_key"]:
        why = offering.state_changing or await with_database(
            _metadata_says_state_changing, chosen.servers, chosen.server_type, offering.tool
        )
        if why:
            return _bad_fields(
                {
                    "idempotency_key": [
                        f"Required: {offering.tool} changes state ({why}); a failover must not act twice."
                    ]
                }
            )
    late = _no_time_left(deadline)
    if late is not None:
        return late
    call["timeout_seconds"] = min(call["timeout_seconds"], deadline.remaining())
    try:
        answer = await balanced_call_async(call, created_by=caller.username)
    except RequestError as exc:
        return _bad_fields(exc.errors)
    result = answer.get("result")
    upstream_is_error = bool(result["is_error"]) if result is not None else None
    structured = {
        "server": answer["server"],
        "result": _upstream_value(result),
        "upstream_is_error": upstream_is_error,
        "attempts": answer["attempts"],
        "excluded": answer["excluded"],
        "operation_id": answer["operation_id"],
        "latency_ms": answer["latency_ms"],
        "error": answer["error"],
    }
    return answered(structured, is_error=bool(answer["error"]) or bool(upstream_is_error))


def _in_a_worker_thread(work: Any, *args: Any, **kwargs: Any) -> Any:
    """Sync coordinator work that waits on the fleet (seconds): not on the shared sync thread, which every fused
    plan and balanced call's record also needs; the thread's database connection is let go as a request's is."""
    try:
        return work(*args, **kwargs)
    finally:
        close_old_connections()


ARBITRAGE_ARGUMENTS = (
    "symbols",
    "size",
    "min_profit_bps",
    "servers",
    "slippage_bps",
    "max_age_seconds",
    "depth",
    "timeout_seconds",
)


async def call_arbitrage(arguments: Mapping[str, Any], caller: Caller, deadline: Deadline) -> mcp_types.CallToolResult:
    unknown = _unknown_arguments(arguments, ARBITRAGE_ARGUMENTS)
    if unknown is not None:
        return unknown
    try:
        request = parse_request(dict(arguments))
    except RequestError as exc:
        return _bad_fields(exc.errors)
    # The fetches' timeout is what the workflow takes; the analysis and the writes after them need a little more.
    room = deadline.remaining() - _ARBITRAGE_SLACK_SECONDS
    if room < 0.1:
        return refused("The request's deadline leaves too little time for an analysis: nothing was asked.")
    request = dataclasses.replace(request, timeout_seconds=min(request.timeout_seconds, room))
    try:
        report = await sync_to_async(_in_a_worker_thread, thread_sensitive=False)(
            run_arbitrage, request, created_by=caller.username
        )
    except RequestError as exc:
        return _bad_fields(exc.errors)
    return answered(report, is_error=bool(report.get("error")))


EXECUTE_ARGUMENTS = ("operation_id", "opportunity", "max_age_seconds", "max_slippage_bps", "idempotency_key")


def _execute(arguments: Mapping[str, Any], created_by: str) -> mcp_types.CallToolResult:
    """As POST /api/coordinator/transactions/ with {"arbitrage": {...}}: the same submission, its refusals."""
    from coordinator.opportunity_checks import OpportunityNotExecutable
    from coordinator.submissions import RefusalReason, SubmissionRefused, transaction_submit
    from coordinator.transaction_log import transaction_json
    from coordinator.transaction_requests import KEY_FIELD, idempotency_key_of

    spec = {name: arguments[name] for name in ("operation_id", "opportunity", "max_age_seconds") if name in arguments}
    data: dict[str, Any] = {"arbitrage": spec, KEY_FIELD: arguments.get("idempotency_key")}
    if "max_slippage_bps" in arguments:
        data["max_slippage_bps"] = arguments["max_slippage_bps"]
    try:
        key = idempotency_key_of(None, data)
        if key is None:
            return _bad_fields({KEY_FIELD: ["Required: a retry with the same key answers the first execution."]})
        submitted = transaction_submit(data=data, created_by=created_by, idempotency_key=key)
    except RequestError as exc:
        return _bad_fields(exc.errors)
    except SubmissionRefused as refusal:
        tx = refusal.transaction
        why = {
            RefusalReason.ALREADY_EXECUTED: "this opportunity was already executed (an opportunity executes once)",
            RefusalReason.IN_PROGRESS: "the transaction of this idempotency_key is still running; ask again later",
            RefusalReason.KEY_REUSED: "this idempotency_key was used for a different request; use a new key",
        }.get(refusal.reason, str(refusal.reason))
        return refused(
            f"Refused: {why} (transaction #{tx.pk}, {tx.state}).",
            code=str(refusal.reason),
            transaction_id=tx.pk,
            state=tx.state,
        )
    except OpportunityNotExecutable as refusal:
        return refused(refusal.message, code="opportunity_not_executable", reason=str(refusal.reason))
    tx = submitted.transaction
    return answered({**transaction_json(tx), "replayed": submitted.replayed}, is_error=tx.state == "aborted")


async def call_execute(arguments: Mapping[str, Any], caller: Caller, deadline: Deadline) -> mcp_types.CallToolResult:
    if not transaction_tools_enabled():
        return refused(f"{EXECUTE_TOOL} is not enabled here (an admin sets MCP_ENDPOINT_TRANSACTION_TOOLS).")
    unknown = _unknown_arguments(arguments, EXECUTE_ARGUMENTS)
    if unknown is not None:
        return unknown
    late = _no_time_left(deadline)
    if late is not None:
        return late
    # A transaction's phases have their own timeouts and a durable log: once started, it finishes or is recovered.
    return await sync_to_async(_execute_in_thread, thread_sensitive=False)(dict(arguments), caller.username)


def _execute_in_thread(arguments: dict[str, Any], created_by: str) -> mcp_types.CallToolResult:
    return _in_a_worker_thread(_execute, arguments, created_by)


async def _current_offerings() -> dict[str, Offering]:
    """From every enabled server, whatever its status (as the tools are listed): a replica that is down is left out
    of the run, and reported, by fusion and the balancer themselves."""
    from mcp_endpoint.fleet_catalogue import enabled_servers

    return offerings(await enabled_servers())


async def _dispatch(
    name: str, arguments: Mapping[str, Any], caller: Caller, deadline: Deadline
) -> mcp_types.CallToolResult:
    if name == ARBITRAGE_TOOL:
        return await call_arbitrage(arguments, caller, deadline)
    if name == EXECUTE_TOOL:
        return await call_execute(arguments, caller, deadline)
    for prefix, call in ((FUSED_PREFIX, call_fused), (BALANCED_PREFIX, call_balanced)):
        if name.startswith(prefix):
            tool = name[len(prefix) :]
            offering = (await _current_offerings()).get(tool)
            if offering is None:
                return refused(f"Unknown tool {name!r}: no two enabled servers of one type offer {tool!r}.")
            return await call(offering, arguments, caller, deadline)
    return refused(f"Unknown tool {name!r}.")


async def call_virtual_tool(
    name: str, arguments: dict[str, Any] | None, caller: Caller, *, deadline: Deadline
) -> mcp_types.CallToolResult:
    """Run a virtual tool for `caller`; every failure is an isError result saying what went wrong (only
    cancellation is raised)."""
    if caller.role < Role.OPERATOR:
        return refused(f"{name} needs the operator role: a call is run and stored as an operation.")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        return refused("The arguments must be an object.")
    try:
        return await _dispatch(name, arguments, caller, deadline)
    except FleetTimedOut as exc:
        return refused(f"Timed out: {exc}")
    except RuntimeError as exc:  # the fleet loop is not running in this process (as the REST views answer 503)
        logger.warning("mcp endpoint: %s could not run: %s", name, exc)
        return refused("The fleet is not running here.")
    except Exception:  # never an internal error for the agent; the log has the traceback
        logger.exception("mcp endpoint: %s failed", name)
        return refused(f"{name} failed inside the orchestrator (logged); try again.")
