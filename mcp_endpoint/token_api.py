"""`/api/auth/my-token/`: the caller's own API token, for any role (a viewer's token lists and reads).

GET says whether there is one and since when, never its key; POST makes one (or replaces the one there is) and is
the only answer that ever shows the key; DELETE revokes it. Session (with CSRF for POST and DELETE, DRF's rule) or
token authentication, as every other API view.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mcp_endpoint.tokens import token_of, token_replace, token_revoke
from registry.permissions import IsViewer


class TokenStatusSerializer(serializers.Serializer):
    exists = serializers.BooleanField(help_text="Whether you have an API token now.")
    created = serializers.DateTimeField(allow_null=True, help_text="When it was made (null without one).")


class NewTokenSerializer(TokenStatusSerializer):
    key = serializers.CharField(
        help_text="The token itself, shown in this answer only: use it as `Authorization: Token <key>` on the REST "
        "API and `Authorization: Bearer <key>` on the MCP endpoint."
    )


def _status(token: Any) -> dict[str, Any]:
    return {"exists": token is not None, "created": token.created if token is not None else None}


class MyTokenView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        summary="Whether you have an API token, and since when (never its key)", responses=TokenStatusSerializer
    )
    def get(self, request: Request) -> Response:
        return Response(TokenStatusSerializer(_status(token_of(request.user))).data)

    @extend_schema(
        summary="Make your API token, replacing the one you have (its old key stops working at once)",
        description="The answer is the only place the key is ever shown.",
        request=None,
        responses={201: NewTokenSerializer},
    )
    def post(self, request: Request) -> Response:
        token = token_replace(user=request.user)
        body = NewTokenSerializer({**_status(token), "key": token.key}).data
        # A key must not be kept by a cache between here and the caller.
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(
        summary="Revoke your API token (it stops working at once); nothing to do without one",
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request) -> Response:
        token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
