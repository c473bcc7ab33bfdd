from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from registry.api import RegistryExportView, RegistryImportView, ServerViewSet
from registry.api_calls import CallCancelView, ServerPromptView, ServerResourceReadView, ServerToolCallView
from registry.catalogue import CatalogueView

router = DefaultRouter()
router.register("servers", ServerViewSet, basename="server")

urlpatterns = [
    # The serving path, on the event loop (before the router, whose server routes are sync views).
    path("servers/<str:name>/call/", ServerToolCallView.as_view(), name="server-call"),
    path("servers/<str:name>/read/", ServerResourceReadView.as_view(), name="server-read"),
    path("servers/<str:name>/prompt/", ServerPromptView.as_view(), name="server-prompt"),
    path("calls/<str:correlation_id>/cancel/", CallCancelView.as_view(), name="call-cancel"),
    path("registry/export/", RegistryExportView.as_view(), name="registry-export"),
    path("catalogue/", CatalogueView.as_view(), name="catalogue"),
    path("registry/import/", RegistryImportView.as_view(), name="registry-import"),
    path("", include(router.urls)),
]
