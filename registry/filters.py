"""Lookup filters of the server list: by type, capability, tag, status and transport."""

from __future__ import annotations

import django_filters

from registry.models import CapabilityKind, Server, ServerQuerySet, ServerStatus, Transport


class ServerFilter(django_filters.FilterSet):
    server_type = django_filters.CharFilter(field_name="server_type", help_text="e.g. exchange")
    tag = django_filters.CharFilter(method="filter_tag", help_text="Servers carrying this tag.")
    status = django_filters.ChoiceFilter(choices=ServerStatus.choices)
    transport = django_filters.ChoiceFilter(choices=Transport.choices)
    enabled = django_filters.BooleanFilter()
    capability = django_filters.CharFilter(
        method="filter_capability", help_text="Servers offering a tool, resource (name or URI), template or prompt."
    )
    capability_kind = django_filters.ChoiceFilter(
        choices=CapabilityKind.choices, method="filter_noop", help_text="Narrows `capability` to one kind."
    )

    class Meta:
        model = Server
        fields = ["server_type", "tag", "status", "transport", "enabled", "capability", "capability_kind"]

    def filter_tag(self, queryset: ServerQuerySet, name: str, value: str) -> ServerQuerySet:
        return queryset.with_tag(value)

    def filter_capability(self, queryset: ServerQuerySet, name: str, value: str) -> ServerQuerySet:
        return queryset.with_capability(value, kind=self.data.get("capability_kind") or None)

    def filter_noop(self, queryset: ServerQuerySet, name: str, value: str) -> ServerQuerySet:
        return queryset
