from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from registry.api import RegistryExportView, RegistryImportView, ServerViewSet

router = DefaultRouter()
router.register("servers", ServerViewSet, basename="server")

urlpatterns = [
    path("registry/export/", RegistryExportView.as_view(), name="registry-export"),
    path("registry/import/", RegistryImportView.as_view(), name="registry-import"),
    path("", include(router.urls)),
]
