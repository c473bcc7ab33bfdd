from __future__ import annotations

from django.urls import path

from registry import catalogue, server_pages, views

app_name = "registry"

urlpatterns = [
    path("", views.fleet_overview, name="overview"),
    path("servers/<slug:name>/", views.server_detail, name="server_detail"),
    path("servers/<slug:name>/discover/", views.server_discover, name="server_discover"),
    path("servers/<slug:name>/edit/", server_pages.server_edit, name="server_edit"),
    path("add-server/", server_pages.server_add, name="server_add"),
    path("import-export/", server_pages.registry_transfer, name="registry_transfer"),
    path("catalogue/", catalogue.catalogue_page, name="catalogue"),
]
