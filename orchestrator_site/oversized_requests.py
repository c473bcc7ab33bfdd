"""An API request whose body is over DATA_UPLOAD_MAX_MEMORY_SIZE answers 413 with JSON, like every other API error.

Django refuses it with RequestDataTooBig when the body is first read (DRF reads `request.body` for JSON and forms),
which DRF does not handle: it became Django's HTML "Bad Request (400)" page (the debug page with DEBUG on).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"


def too_large_message(limit: int) -> str:
    return f"The request body is larger than {limit} bytes."


class OversizedRequestAsJSONMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestDataTooBig) and request.path_info.startswith(API_PREFIX):
            return JsonResponse({"detail": too_large_message(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)}, status=413)
        return None
