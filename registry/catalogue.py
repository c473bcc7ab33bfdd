"""The fleet-wide catalogue: every tool, resource, template and prompt on offer, searched by substring.

Two interfaces over one read (`selectors.catalogue_entries` + `catalogue_offers`): the page `/catalogue/` (viewers
and up; a GET form, so it works without scripts, and `static/js/catalogue.js` searches as you type through the API)
and `GET /api/catalogue/?q=quote&kind=tool`, paginated like every list of the API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from registry import selectors
from registry.models import CapabilityKind
from registry.permissions import IsViewer
from registry.request_bodies import one_of, query_filters
from registry.views import viewer_required

# A search string longer than any name or description worth matching is cut, not refused.
MAX_QUERY_LENGTH = 200


class CatalogueFilters(serializers.Serializer):
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_QUERY_LENGTH,
        help_text="Case-insensitive substring of the name, title, description or URI.",
    )
    kind = serializers.ChoiceField(
        choices=CapabilityKind.values,
        required=False,
        allow_blank=True,
        error_messages=one_of(CapabilityKind.values),
    )


class CatalogueServerSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField()
    identifier = serializers.CharField(help_text="The resource URI or URI template it lists; else the name.")


class CatalogueEntrySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=CapabilityKind.values)
    kind_label = serializers.CharField(help_text="The kind in words.")
    name = serializers.CharField()
    title = serializers.CharField(allow_blank=True)
    description = serializers.CharField(allow_blank=True, help_text="One of the servers' descriptions of it.")
    server_count = serializers.IntegerField()
    servers = CatalogueServerSerializer(many=True)


@extend_schema(tags=["servers"])
class CatalogueView(GenericAPIView):
    """What the fleet offers now (each server's latest discovery): one entry per kind and name, with the servers
    offering it. `q` finds a substring of the name, title, description or URI, in any case."""

    permission_classes = [IsViewer]
    serializer_class = CatalogueEntrySerializer

    @extend_schema(operation_id="catalogue_list", parameters=[CatalogueFilters])
    def get(self, request: Request) -> Response:
        filters = query_filters(CatalogueFilters, request.query_params)
        entries = selectors.catalogue_entries(filters.get("q", "").strip(), filters.get("kind", ""))
        page = self.paginate_queryset(entries)
        entries = CatalogueEntrySerializer(selectors.catalogue_offers(page or []), many=True).data
        return self.get_paginated_response(entries)


@viewer_required
def catalogue_page(request: HttpRequest) -> HttpResponse:
    # A NUL cannot be in a PostgreSQL string (the API's field refuses it; the page drops it).
    query = (request.GET.get("q") or "").replace("\x00", "").strip()[:MAX_QUERY_LENGTH]
    kind = request.GET.get("kind") or ""
    if kind not in CapabilityKind.values:
        kind = ""
    page = Paginator(selectors.catalogue_entries(query, kind), selectors.CATALOGUE_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context: dict[str, Any] = {
        "query": query,
        "kind": kind,
        "kinds": CapabilityKind.choices,
        "page": page,
        "entries": selectors.catalogue_offers(page.object_list),
        "query_string": _query_string(query, kind),
    }
    return render(request, "registry/catalogue.html", context)


def _query_string(query: str, kind: str) -> str:
    """The search as a query string for the pager's links (without the page)."""
    return urlencode({key: value for key, value in (("q", query), ("kind", kind)) if value})
