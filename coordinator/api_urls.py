from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from coordinator.api import ArbitrageView, BalancedCallView, OperationViewSet, RoutingView, TransactionViewSet

router = DefaultRouter()
router.register("coordinator/operations", OperationViewSet, basename="coordinator-operation")
router.register("coordinator/transactions", TransactionViewSet, basename="coordinator-transaction")

urlpatterns = [
    path("coordinator/arbitrage/", ArbitrageView.as_view(), name="coordinator-arbitrage"),
    path("coordinator/call/", BalancedCallView.as_view(), name="coordinator-call"),
    path("coordinator/routing/", RoutingView.as_view(), name="coordinator-routing"),
    path("", include(router.urls)),
]
