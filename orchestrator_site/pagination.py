"""The API's pagination: `limit` capped, an absurd `offset` answered 400 naming it (an offset past 2**63 made
SQLite overflow into a 500)."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

MAX_OFFSET = 1_000_000_000


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1_000

    def get_offset(self, request: Request) -> int:
        raw = request.query_params.get(self.offset_query_param)
        if raw is None:
            return 0
        try:
            offset = int(raw)
        except ValueError:
            raise ValidationError({"offset": ["A whole number is required."]}) from None
        if offset < 0 or offset > MAX_OFFSET:
            raise ValidationError({"offset": [f"Must be between 0 and {MAX_OFFSET}."]})
        return offset
