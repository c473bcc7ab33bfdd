from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from health.alerting_views import alerting_page
from orchestrator_site.login_views import ThrottledLoginView, ThrottledObtainAuthToken

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/auth/token/", ThrottledObtainAuthToken.as_view(), name="api-token"),
    path("api/", include("registry.api_urls")),
    path("api/", include("pipeline.api_urls")),
    path("api/", include("health.api_urls")),
    path("api/", include("fusion.api_urls")),
    path("api/", include("coordinator.api_urls")),
    path("api/", include("mcp_endpoint.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start script as a file (?script), not inline: the page keeps the site's CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("pipeline/", include("pipeline.urls")),
    path("health/", include("health.urls")),
    # Top level, not under /health/: a server named "alerting" keeps /health/alerting/.
    path("alerting/", alerting_page, name="alerting"),
    path("fusion/", include("fusion.urls")),
    path("coordinator/", include("coordinator.urls")),
    path("", include("mcp_endpoint.urls")),
    path("oauth/", include("registry.oauth_urls")),
    path("", include("registry.urls")),
]
