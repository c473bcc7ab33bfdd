from __future__ import annotations

from django.urls import path

from registry import catalogue, views

app_name = "registry"

urlpatterns = [
    path("", views.fleet_overview, name="overview"),
    path("servers/<slug:name>/", views.server_detail, name="server_detail"),
    path("servers/<slug:name>/discover/", views.server_discover, name="server_discover"),
    path("catalogue/", catalogue.catalogue_page, name="catalogue"),
]
