"""The coordinator's pages: operations (live), and one operation (an arbitrage run with its spread table and chart,
or a transaction with its fills, realised profit and the analysis it came from)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from coordinator.api import operation_json
from coordinator.models import Operation, OperationKind, Transaction
from coordinator.opportunity_checks import default_max_age_seconds
from coordinator.transaction_log import transaction_json
from registry.permissions import Role, role_of
from registry.views import viewer_required


@viewer_required
def operations_page(request: HttpRequest) -> HttpResponse:
    return render(request, "coordinator/operations.html", {"can_run": role_of(request.user) >= Role.OPERATOR})


def _executions(analysis: Operation) -> list[dict[str, Any]]:
    """The transactions that executed (or tried) the analysis's opportunities, newest first: the page links each."""
    rows = Transaction.objects.filter(analysis=analysis).order_by("-created_at", "-id")
    return [
        {"opportunity": tx.opportunity, "transaction_id": tx.pk, "operation_id": tx.operation_id, "state": tx.state}
        for tx in rows.only("id", "opportunity", "operation_id", "state", "created_at")
    ]


@viewer_required
def operation_page(request: HttpRequest, pk: int) -> HttpResponse:
    operation = get_object_or_404(Operation, pk=pk)
    data = operation_json(operation, full=True)
    if operation.kind == OperationKind.TRANSACTION:
        # The log as it is now (the operation's copy was taken when it finished, and an in-doubt one has none).
        tx = Transaction.objects.prefetch_related("participants").filter(operation=operation).first()
        data["transaction"] = transaction_json(tx) if tx is not None else None
    elif operation.kind == OperationKind.ARBITRAGE:
        data["executions"] = _executions(operation)
    context = {
        "operation": operation,
        "data": data,
        "can_run": role_of(request.user) >= Role.OPERATOR,
        "max_age_seconds": default_max_age_seconds(),
    }
    return render(request, "coordinator/operation.html", context)
