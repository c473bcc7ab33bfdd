"""`/oauth/`: "Authorize" for a server behind OAuth, and the callback authorization servers send people back to."""

from django.urls import path

from registry.oauth_views import oauth_authorize, oauth_callback

urlpatterns = [
    path("callback/", oauth_callback, name="oauth-callback"),
    path("authorize/<slug:name>/", oauth_authorize, name="oauth-authorize"),
]
