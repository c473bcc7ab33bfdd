from __future__ import annotations

from django.urls import path

from fusion import views

app_name = "fusion"

urlpatterns = [path("", views.fusion_page, name="page")]
