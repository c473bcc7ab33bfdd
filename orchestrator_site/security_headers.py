"""The Content-Security-Policy of every response.

The pages load everything from our own static files (our scripts, Plotly, the API docs' Swagger UI from the sidecar
package) and run no inline script, so a policy of `'self'` holds them; a script that an injected name or description
might smuggle into a page would not run. The WebSocket of the live pages (/ws/events/) goes to the host the page
came from, named in connect-src because `'self'` did not cover ws: in older browsers.

Styles allow 'unsafe-inline': Plotly adds <style> elements of its own when it draws (seen refused in Chromium with
`style-src 'self'`), and the Swagger UI page has an inline <style>; styles cannot run script. The API docs page needs
no exception: it is drf-spectacular's split view, whose start script is a file. Static files (served by the
static-files handler, before any middleware) carry no policy, which only matters for documents.
Django 5.2 has no CSP support of its own (it arrives in 6.0).
"""

from __future__ import annotations

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

HEADER = "Content-Security-Policy"

# Everything but connect-src, which names the request's own host.
FIXED_DIRECTIVES = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    # data: for the favicon of base.html and Swagger UI's icons; blob: for Plotly's image export.
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)


def content_security_policy(request: HttpRequest) -> str:
    try:
        # get_host() is checked against ALLOWED_HOSTS, so it cannot carry a `;` or a space into the header.
        host = request.get_host()
    except DisallowedHost:
        # The answer to a request for a host we do not serve (a 400): the page-origin sources are enough.
        connect = "connect-src 'self'"
    else:
        # Both schemes: behind a TLS proxy the request may look like http while the browser speaks wss.
        connect = f"connect-src 'self' ws://{host} wss://{host}"
    return "; ".join((*FIXED_DIRECTIVES, connect))


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Sets the policy on every response that does not bring its own (sync and async: MiddlewareMixin is both)."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if HEADER not in response:
            response[HEADER] = content_security_policy(request)
        return response
