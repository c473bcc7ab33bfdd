from __future__ import annotations

from django.urls import path

from health import views

app_name = "health"

urlpatterns = [
    path("", views.fleet_health_page, name="fleet"),
    path("<slug:name>/", views.server_health_page, name="server"),
]
