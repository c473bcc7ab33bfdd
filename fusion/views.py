"""The fusion page: ask a question of several servers, see the fused value, each source and the explanation."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from fusion.strategies import all_strategies
from fusion.tool_safety import METADATA_KEY, RULE, state_changing_tools
from registry.models import Capability, CapabilityKind
from registry.permissions import Role, role_of
from registry.views import viewer_required

# Tool names offered in the page's picker: a fleet may offer thousands (a server alone up to
# MCP_MAX_CAPABILITIES_PER_LIST), and the page is loaded by every user; the search field finds the others.
TOOL_CHOICES_LIMIT = 200
TOOL_SEARCH_MAX_LENGTH = 100
DEFAULT_TOOL = "get_quote"


@dataclass(frozen=True)
class ToolChoices:
    """The picker's tools (name -> the enabled servers offering it), tools offered by several first; how many
    distinct names match in all; the search that narrowed them."""

    tools: dict[str, list[str]]
    total: int
    search: str
    state_changing: dict[str, str]  # tool -> why it changes state (hidden from the picker until opted in)

    @property
    def capped(self) -> bool:
        return self.total > len(self.tools)


def tools_offered(search: str = "", limit: int = TOOL_CHOICES_LIMIT) -> ToolChoices:
    """Distinct tool names of enabled servers (from their latest discovery) containing `search`, the most widely
    offered first, at most `limit` of them, each with its servers. Counted and cut in the database, so the page
    stays small whatever the fleet offers."""
    offered = Capability.objects.filter(kind=CapabilityKind.TOOL, server__enabled=True)
    if search:
        offered = offered.filter(name__icontains=search)
    by_name = offered.values("name").annotate(servers=Count("server", distinct=True)).order_by()
    total = by_name.count()
    top = list(by_name.order_by("-servers", "name").values_list("name", flat=True)[:limit])
    tools: dict[str, list[str]] = {name: [] for name in top}
    rows = offered.filter(name__in=top).values_list("name", "server__name").order_by("name", "server__name")
    for name, server in rows:
        tools[name].append(server)
    return ToolChoices(tools=tools, total=total, search=search, state_changing=state_changing_tools(tools))


@viewer_required
def fusion_page(request: HttpRequest) -> HttpResponse:
    search = (request.GET.get("tool_search") or "").strip()[:TOOL_SEARCH_MAX_LENGTH]
    choices = tools_offered(search)
    selected = (request.GET.get("tool") or "").strip()
    reads = [tool for tool in choices.tools if tool not in choices.state_changing]
    if selected not in choices.tools:
        selected = DEFAULT_TOOL if DEFAULT_TOOL in reads else next(iter(reads), "")
    run = (request.GET.get("run") or "").strip()
    context = {
        "can_ask": role_of(request.user) >= Role.OPERATOR,
        "tools": choices.tools,
        "tool_choices": choices,
        "selected_tool": selected,
        "state_changing": choices.state_changing,
        "state_changing_rule": RULE,
        "state_changing_key": METADATA_KEY,
        # A past run to open (/fusion/?run=<id>): fusion.js fetches it from GET /api/fusion/runs/<id>/.
        "open_run": run if run.isdigit() else "",
        "strategies": [strategy.describe() for strategy in all_strategies()],
    }
    return render(request, "fusion/fusion.html", context)
