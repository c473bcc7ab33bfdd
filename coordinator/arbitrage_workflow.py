"""The reference workflow, arbitrage analysis: quotes and order books for a set of symbols from every exchange at
once, then the net result of every ordered pair after fees and a slippage buffer, ranked; stored as an operation.
Exchanges in maintenance (the status health sets while a window is open) are not asked, and are reported excluded.

Sync entry point (a view, the demo): `run_arbitrage(request, created_by=...)`. The workflow itself runs on the fleet
loop: one step per exchange and symbol (both tools asked at once, each step optional, so one exchange that is down
leaves the others' analysis standing), then the analysis step after all of them.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from coordinator.arbitrage import MarketView, analyse
from coordinator.errors import RequestError
from coordinator.models import OperationKind
from coordinator.services import StepLog, operation_finish, operation_start
from coordinator.workflows import Step, StepContext, Workflow, run_workflow
from fleet import calls as fleet_calls
from mcp_client import Deadline
from mcp_client.results import NoResultValue, ToolAnsweredError, ToolCallResult, result_value
from registry.models import Capability, CapabilityKind, Server, ServerStatus
from registry.request_bodies import (
    DistinctNamesField,
    JsonBody,
    JsonIntegerField,
    JsonNumberField,
    one_message,
    plain_errors,
)

SYMBOL = re.compile(r"^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$")
QUOTE_TOOLS = ("get_quote", "get_order_book")
CALLER = "coordinator"
MAX_SYMBOLS = 20


@dataclass(frozen=True)
class ArbitrageRequest:
    symbols: tuple[str, ...]
    size: float
    min_profit_bps: float = 0.0
    servers: tuple[str, ...] = ()
    slippage_bps: float = 2.0
    max_age_seconds: float = 10.0
    depth: int = 10
    timeout_seconds: float = 5.0

    def to_json(self) -> dict[str, Any]:
        return {
            "symbols": list(self.symbols),
            "size": self.size,
            "min_profit_bps": self.min_profit_bps,
            "servers": list(self.servers) or None,
            "slippage_bps": self.slippage_bps,
            "max_age_seconds": self.max_age_seconds,
            "depth": self.depth,
            "timeout_seconds": self.timeout_seconds,
        }


SYMBOL_LIST = 'A non-empty list of symbols, e.g. ["BTC-USD"].'


class ArbitrageRequestSerializer(JsonBody):
    """An arbitrage analysis to run: symbols, the size to trade, the least net profit worth reporting, and which
    exchanges (default: every enabled server offering get_quote and get_order_book)."""

    symbols = DistinctNamesField(
        pattern=SYMBOL,
        limit=MAX_SYMBOLS,
        error_messages={
            **one_message(SYMBOL_LIST, ("not_a_list",)),
            "too_many": "At most {limit} symbols.",
            "bad_entry": "Not a symbol of the form BASE-QUOTE: {entry!r}.",
            "repeated": "Symbols must not repeat.",
        },
    )
    size = JsonNumberField(min_value=0, max_value=1e9, help_text="Greater than 0.")
    min_profit_bps = JsonNumberField(required=False, default=0.0, min_value=-10_000, max_value=10_000)
    servers = DistinctNamesField(
        required=False,
        default=list,
        error_messages={"not_a_list": "A list of server names.", "repeated": "Servers must not repeat."},
    )
    slippage_bps = JsonNumberField(required=False, default=2.0, min_value=0, max_value=1_000)
    max_age_seconds = JsonNumberField(required=False, default=10.0, min_value=0.1, max_value=3_600)
    depth = JsonIntegerField(
        required=False, default=10, min_value=1, max_value=100, message="A whole number from 1 to 100."
    )
    timeout_seconds = JsonNumberField(required=False, default=5.0, min_value=0.1, max_value=60)

    def validate_size(self, size: float) -> float:
        if size <= 0:
            raise serializers.ValidationError("Must be greater than 0.")
        return size


def parse_request(data: Any) -> ArbitrageRequest:
    """An ArbitrageRequest from the API's JSON, or RequestError naming each bad field."""
    body = ArbitrageRequestSerializer(data=data)
    if not body.is_valid():
        raise RequestError(plain_errors(body.errors))
    attrs = body.validated_data
    return ArbitrageRequest(**attrs | {"symbols": tuple(attrs["symbols"]), "servers": tuple(attrs["servers"])})


MAINTENANCE = "maintenance"  # the reason a server is left out while health holds it in a maintenance window


@dataclass(frozen=True)
class Candidates:
    servers: list[str]  # the exchanges to ask
    in_maintenance: list[str]  # left out: health has them in a maintenance window


def candidate_servers(request: ArbitrageRequest) -> Candidates:
    """The exchanges to ask: named ones (each must offer both tools), or every enabled server that does; those in
    maintenance (the status health sets while a window is open) left out and named."""
    offering = Capability.objects.filter(kind=CapabilityKind.TOOL, name__in=QUOTE_TOOLS, server__enabled=True)
    tools_of: dict[str, set[str]] = {}
    for server, tool in offering.values_list("server__name", "name"):
        tools_of.setdefault(server, set()).add(tool)
    able = sorted(name for name, tools in tools_of.items() if tools >= set(QUOTE_TOOLS))
    if request.servers:
        existing = set(Server.objects.filter(name__in=request.servers).values_list("name", flat=True))
        unknown = [name for name in request.servers if name not in existing]
        if unknown:
            raise RequestError({"servers": [f"No such server: {', '.join(unknown)}."]})
        unable = [name for name in request.servers if name not in able]
        if unable:
            raise RequestError(
                {"servers": [f"Not an enabled exchange offering get_quote and get_order_book: {', '.join(unable)}."]}
            )
        chosen = list(request.servers)
    else:
        chosen = able
    if not chosen:
        raise RequestError({"servers": ["No candidate server: no enabled server offers get_quote and get_order_book."]})
    resting = set(
        Server.objects.filter(name__in=chosen, status=ServerStatus.MAINTENANCE).values_list("name", flat=True)
    )
    in_maintenance = [name for name in chosen if name in resting]
    chosen = [name for name in chosen if name not in resting]
    if len(chosen) < 2:
        aside = f" ({', '.join(in_maintenance)} in maintenance)" if in_maintenance else ""
        raise RequestError({"servers": [f"An arbitrage needs at least two exchanges not in maintenance{aside}."]})
    return Candidates(chosen, in_maintenance)


@dataclass
class _Collected:
    failures: list[dict[str, Any]] = field(default_factory=list)


def _value_of(tool: str, result: ToolCallResult) -> Any:
    """The answer's value (the analysis checks its shape); the step fails with what was wrong otherwise."""
    try:
        return result_value(result)
    except ToolAnsweredError as exc:
        raise RuntimeError(exc.text[:300] or "the tool answered an error") from None
    except NoResultValue as exc:
        raise RuntimeError(f"{tool}: {exc}") from None


def _fetch_step(server: str, symbol: str, request: ArbitrageRequest) -> Any:
    async def fetch(context: StepContext) -> dict[str, Any]:
        deadline = Deadline.within(request.timeout_seconds)
        quote, book = await asyncio.gather(
            fleet_calls.call_tool(server, "get_quote", {"symbol": symbol}, deadline=deadline, caller=CALLER),
            fleet_calls.call_tool(
                server, "get_order_book", {"symbol": symbol, "depth": request.depth}, deadline=deadline, caller=CALLER
            ),
        )
        return {
            "quote": _value_of("get_quote", quote.result),
            "book": _value_of("get_order_book", book.result),
            "latency_ms": round(max(quote.outcome.latency_ms, book.outcome.latency_ms), 2),
        }

    return fetch


def build_workflow(request: ArbitrageRequest, servers: list[str]) -> Workflow:
    fetches = [
        Step(
            f"quote:{server}:{symbol}",
            _fetch_step(server, symbol, request),
            optional=True,
            timeout_seconds=request.timeout_seconds,
        )
        for symbol in request.symbols
        for server in servers
    ]

    async def analyse_step(context: StepContext) -> dict[str, Any]:
        views: list[MarketView] = []
        invalid: list[dict[str, Any]] = []
        for step in fetches:
            found = context.results.get(step.name)
            if found is None:
                continue
            _, server, symbol = step.name.split(":", 2)
            try:
                views.append(MarketView.from_answers(server, found["quote"], found["book"]))
            except ValueError as exc:
                invalid.append({"server": server, "symbol": symbol, "error": f"unusable answer: {exc}"})
        report = analyse(
            views,
            size=request.size,
            min_profit_bps=request.min_profit_bps,
            slippage_bps=request.slippage_bps,
            max_age_seconds=request.max_age_seconds,
            now=timezone.now(),
        )
        return {"report": report.to_json(), "invalid": invalid}

    analysis = Step("analyse", analyse_step, after=tuple(step.name for step in fetches))
    return Workflow("arbitrage", [*fetches, analysis])


def run_arbitrage(request: ArbitrageRequest, *, created_by: str) -> dict[str, Any]:
    """The stored report (a dict for the API); RequestError for a request that cannot run (also once the exchanges
    said so: a symbol none of them knows)."""
    candidates = candidate_servers(request)
    servers = candidates.servers
    # Reported like a stale quote is: each (server, symbol) left out, with why.
    resting = [
        {"server": server, "symbol": symbol, "reason": MAINTENANCE}
        for server in candidates.in_maintenance
        for symbol in request.symbols
    ]
    operation = operation_start(
        kind=OperationKind.ARBITRAGE,
        parameters={**request.to_json(), "servers": servers, "in_maintenance": candidates.in_maintenance},
        created_by=created_by,
    )
    log = StepLog(operation)
    workflow = build_workflow(request, servers)
    budget = request.timeout_seconds + 5.0
    try:
        outcome = fleet_calls.run_on_fleet(
            run_workflow(
                workflow, deadline_seconds=budget, on_step=lambda record: log.record(record.to_json(with_result=False))
            ),
            deadline=Deadline.within(budget),
            what=f"the arbitrage workflow of operation {operation.pk}",
        )
    except Exception as exc:  # the fleet loop is gone, or the workflow broke: the operation says so
        operation_finish(operation, steps=log.steps(), result=None, error=f"the workflow could not run: {exc}")
        raise
    steps = [record.to_json(with_result=False) for record in outcome.steps]
    failures = [
        {"server": step["name"].split(":")[1], "symbol": step["name"].split(":")[2], "error": step["error"]}
        for step in steps
        if step["name"].startswith("quote:") and step["state"] != "succeeded"
    ]
    analysed = outcome.results.get("analyse")
    if analysed is None:
        result = {"failures": failures, "excluded": resting}
        operation_finish(operation, steps=steps, result=result, error=outcome.error or "no analysis")
        return _answer(operation, request, servers, result, failures)
    failures += analysed["invalid"]
    report = {**analysed["report"]}
    report["excluded"] = [*resting, *report["excluded"]]
    quoted = {view["symbol"] for view in report.get("views", [])}
    unknown = [
        symbol
        for symbol in request.symbols
        if symbol not in quoted
        and (mine := [f for f in failures if f["symbol"] == symbol])
        and all("nknown symbol" in (f["error"] or "") for f in mine)
    ]
    error = ""
    if unknown:
        error = f"unknown symbol: no exchange quotes {', '.join(unknown)}"
    result = {**report, "failures": failures}
    operation_finish(operation, steps=steps, result=result, error=error)
    if unknown:
        raise RequestError({"symbols": [f"{error}."], "operation_id": [str(operation.pk)]})
    return _answer(operation, request, servers, result, failures)


def _answer(operation: Any, request: ArbitrageRequest, servers: list[str], result: dict | None, failures: list) -> dict:
    result = result or {}
    return {
        "operation_id": operation.pk,
        "state": operation.state,
        "error": operation.error or None,
        **request.to_json(),
        "servers": servers,
        "quotes": result.get("views", []),
        "excluded": result.get("excluded", []),
        "opportunities": result.get("opportunities", []),
        "pairs": result.get("all_pairs", []),
        "skipped": result.get("skipped", []),
        "failures": failures,
        "started_at": operation.started_at.isoformat(),
        "duration_ms": operation.duration_ms,
    }
