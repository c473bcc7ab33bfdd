"""The coordinator's pages: operations (live), and one operation (an arbitrage run with its spread table and chart)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from coordinator.api import operation_json
from coordinator.models import Operation
from registry.permissions import Role, role_of
from registry.views import viewer_required


@viewer_required
def operations_page(request: HttpRequest) -> HttpResponse:
    return render(request, "coordinator/operations.html", {"can_run": role_of(request.user) >= Role.OPERATOR})


@viewer_required
def operation_page(request: HttpRequest, pk: int) -> HttpResponse:
    operation = get_object_or_404(Operation, pk=pk)
    context = {
        "operation": operation,
        "data": operation_json(operation, full=True),
        "can_run": role_of(request.user) >= Role.OPERATOR,
    }
    return render(request, "coordinator/operation.html", context)
