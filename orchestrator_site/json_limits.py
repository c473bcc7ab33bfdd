"""The API's JSON parser, with a size limit (413) and a nesting-depth limit (400) instead of a 500.

Python's json module recurses per nesting level: a body of 100,000 '[' raised RecursionError (a 500, reachable
without logging in through the token endpoint). The depth is checked first by a linear scan that does not recurse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from orchestrator_site.oversized_requests import too_large_message


class RequestBodyTooLarge(APIException):
    # The same answer as a body over DATA_UPLOAD_MAX_MEMORY_SIZE (orchestrator_site/oversized_requests.py).
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets nest deeper than `limit`, ignoring brackets inside strings (no recursion, one pass)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


class LimitedJSONParser(JSONParser):
    def parse(
        self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Mapping | None = None
    ) -> Any:
        if stream is None:
            return None
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise RequestBodyTooLarge(too_large_message(limit))
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as error:
            raise ParseError(f"The request body is not valid {encoding} text.") from error
        depth = settings.API_MAX_JSON_DEPTH
        if json_depth_exceeds(text, depth):
            raise ParseError(f"The JSON is nested deeper than {depth} levels.")
        try:
            return json.loads(text, parse_constant=_refuse_constant)
        except ValueError as error:
            raise ParseError(f"JSON parse error - {str(error)[:200]}") from error
        except RecursionError as error:  # belt and braces: the scan above should have stopped it
            raise ParseError(f"The JSON is nested deeper than {depth} levels.") from error


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; letting them in makes numbers that break comparisons and serialisation later.
    raise ValueError(f"{name} is not a JSON value")
