from __future__ import annotations

from django.urls import path

from mcp_endpoint.views import endpoint_page

app_name = "mcp_endpoint"

urlpatterns = [
    path("mcp-endpoint/", endpoint_page, name="page"),
]
