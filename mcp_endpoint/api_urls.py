from __future__ import annotations

from django.urls import path

from mcp_endpoint.token_api import MyTokenView

urlpatterns = [
    path("auth/my-token/", MyTokenView.as_view(), name="my-token"),
]
