"""An API request whose body is over DATA_UPLOAD_MAX_MEMORY_SIZE answers 413 with JSON, like every other API error.

Django refuses it with RequestDataTooBig when the body is first read (DRF reads `request.body` for JSON and forms),
which DRF does not handle: it became Django's HTML "Bad Request (400)" page (the debug page with DEBUG on).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

API_PREFIX = "/api/"


def too_large_message(limit: int) -> str:
    return f"The request body is larger than {limit} bytes."


class OversizedRequestAsJSONMiddleware(MiddlewareMixin):
    """Sync and async (MiddlewareMixin is both): a sync-only middleware would put every request, the async serving
    path's too, through a thread hop and the shared thread of sync views."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestDataTooBig) and request.path_info.startswith(API_PREFIX):
            return JsonResponse({"detail": too_large_message(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)}, status=413)
        return None
