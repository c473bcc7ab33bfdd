from __future__ import annotations

from django.urls import path

from pipeline.api import EventHistoryView, FleetLiveView, PipelineMetricsView

urlpatterns = [
    path("events/", EventHistoryView.as_view(), name="event-history"),
    path("pipeline/metrics/", PipelineMetricsView.as_view(), name="pipeline-metrics"),
    path("pipeline/fleet/", FleetLiveView.as_view(), name="pipeline-fleet"),
]
