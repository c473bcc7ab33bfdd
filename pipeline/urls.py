from __future__ import annotations

from django.urls import path

from pipeline import views

app_name = "pipeline"

urlpatterns = [path("", views.pipeline_page, name="page")]
