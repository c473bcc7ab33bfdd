from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from fusion.api import FusionQueryView, FusionRunViewSet, StrategyListView, TrustListView

router = DefaultRouter()
router.register("fusion/runs", FusionRunViewSet, basename="fusion-run")

urlpatterns = [
    path("fusion/query/", FusionQueryView.as_view(), name="fusion-query"),
    path("fusion/strategies/", StrategyListView.as_view(), name="fusion-strategies"),
    path("fusion/trust/", TrustListView.as_view(), name="fusion-trust"),
    path("", include(router.urls)),
]
