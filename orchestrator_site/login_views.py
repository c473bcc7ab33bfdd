"""The login page and the API token endpoint, both behind the failed-login throttle."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from orchestrator_site import login_throttle


class ThrottledLoginView(auth_views.LoginView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("username", ""))
        address = login_throttle.client_address(request)
        refusal = login_throttle.admit(username, address)
        if refusal is not None:
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, refusal.message)
            response = self.render_to_response(self.get_context_data(form=form), status=429)
            response["Retry-After"] = str(refusal.retry_after_seconds)
            return response
        response = super().post(request, *args, **kwargs)
        if response.status_code == 302:
            login_throttle.record_success(username, address)
        # Anything else was counted as a failure by admit().
        return response


class ThrottledObtainAuthToken(ObtainAuthToken):
    # ObtainAuthToken names its own parsers; use the API's, with their size and depth limits (anonymous callers).
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        username = str(request.data.get("username", "")) if hasattr(request.data, "get") else ""
        address = login_throttle.client_address(request)
        refusal = login_throttle.admit(username, address)
        if refusal is not None:
            return Response(
                {"detail": refusal.message},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(refusal.retry_after_seconds)},
            )
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            # Counted as a failure by admit().
            return Response(serializer.errors, status=status.HTTP_400_BAD_REQUEST)
        login_throttle.record_success(username, address)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})
