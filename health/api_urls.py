from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from health.alerts_api import AlertRuleViewSet, AlertViewSet, ChannelViewSet, DeliveryViewSet, SilenceViewSet
from health.api import CheckNowView, FleetHealthView, MaintenanceWindowViewSet, ServerHealthView, ServerSamplesView

router = DefaultRouter()
router.register("health/maintenance", MaintenanceWindowViewSet, basename="maintenance-window")
# The alert sub-resources first: their paths would otherwise look like an alert's id.
router.register("alerts/rules", AlertRuleViewSet, basename="alert-rule")
router.register("alerts/silences", SilenceViewSet, basename="silence")
router.register("alerts/channels", ChannelViewSet, basename="notification-channel")
router.register("alerts/deliveries", DeliveryViewSet, basename="notification-delivery")
router.register("alerts", AlertViewSet, basename="alert")

urlpatterns = [
    path("", include(router.urls)),
    path("health/", FleetHealthView.as_view(), name="health-fleet"),
    path("health/<slug:name>/", ServerHealthView.as_view(), name="health-server"),
    path("health/<slug:name>/samples/", ServerSamplesView.as_view(), name="health-samples"),
    path("health/<slug:name>/check/", CheckNowView.as_view(), name="health-check"),
]
