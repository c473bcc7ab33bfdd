"""The OpenAPI schema documents every error an operation can answer, not only its success.

A drf-spectacular postprocessing hook: every operation can answer 401 (no credentials), 403 (role), 429 (throttled);
those with a path parameter 404; those with a body or filters 400; those with a body 413 (too large); the ones that
talk to MCP servers 502 (the server answered wrongly), 503 (it cannot be reached now) and 504 (no answer in time).
Each as `{"detail": "..."}` unless the view documents its own shape.
"""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
    "description": "What went wrong, in words a person can act on. Field errors name the field instead.",
}
FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": True,
    "description": 'Each wrong field with its messages, e.g. {"url": ["..."]}, or {"detail": "..."}.',
}
DESCRIPTIONS = {
    "400": "The request is not valid: the fields that are wrong are named.",
    "401": "No credentials, or credentials that are not valid.",
    "403": "The user's role does not allow this.",
    "404": "No such server (or resource).",
    "413": "The request body is larger than the limit (API_MAX_BODY_BYTES).",
    "429": "Too many requests; see Retry-After.",
    "502": "The MCP server answered with an error or an invalid response.",
    "503": "The MCP server cannot be reached now (connecting, reconnecting, or refused).",
    "504": "The MCP server did not answer in time.",
}
FLEET_ACTIONS = ("/call/", "/read/", "/discover/")


def _response(code: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/FieldErrors"} if code == "400" else {"$ref": "#/components/schemas/Error"}
    return {"description": DESCRIPTIONS[code], "content": {"application/json": {"schema": schema}}}


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", ERROR)
    components.setdefault("FieldErrors", FIELD_ERRORS)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes = ["401", "403", "429"]
            if "{" in path:
                codes.append("404")
            if method in ("post", "put", "patch") or operation.get("parameters"):
                codes.append("400")
            if method in ("post", "put", "patch"):
                codes.append("413")
            if path.endswith(FLEET_ACTIONS):
                codes += ["502", "503", "504"]
            for code in codes:
                responses.setdefault(code, _response(code))
    return result
