from __future__ import annotations

from django.urls import path

from coordinator import views

app_name = "coordinator"

urlpatterns = [
    path("", views.operations_page, name="operations"),
    path("operations/<int:pk>/", views.operation_page, name="operation"),
]
