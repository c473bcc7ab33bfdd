"""The pipeline page: the live event table with filters, pause and resume, counters and the event-rate chart."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from registry.views import viewer_required


@viewer_required
def pipeline_page(request: HttpRequest) -> HttpResponse:
    return render(request, "pipeline/pipeline.html")
