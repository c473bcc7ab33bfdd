"""What the orchestrator answers when a server asks the client something.

No person sits behind the orchestrator's sessions, so:
- elicitation (form mode) is answered by a policy: the requested schema's defaults are applied, and the request is
  accepted with them when they satisfy the schema (every required field has a valid value), otherwise declined;
  URL mode (open a page for the user) is declined;
- sampling and roots are not offered: the SDK then does not advertise them and refuses them with a JSON-RPC error
  ("Sampling not supported", "List roots not supported"), which is the clean decline.

Every elicitation answer is reported to a hook (`ClientRequestRecord`), so the layer can record it like a call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import mcp_types as types
from jsonschema import exceptions as schema_exceptions
from jsonschema.validators import validator_for
from mcp.client.session import ClientRequestContext, ElicitationFnT

logger = logging.getLogger(__name__)

Decision = Literal["accepted", "declined"]


@dataclass(frozen=True)
class ClientRequestRecord:
    """One request a server sent us and what was answered."""

    method: str  # "elicitation/create"
    decision: Decision
    detail: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


OnClientRequest = Callable[[ClientRequestRecord], None]


def defaults_answer(schema: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(content, "") when the schema's defaults satisfy it, else (None, why not)."""
    properties = schema.get("properties") or {}
    if not isinstance(properties, Mapping):
        return None, "the requested schema has no usable properties"
    content = {
        name: spec["default"]
        for name, spec in properties.items()
        if isinstance(spec, Mapping) and "default" in spec and spec["default"] is not None
    }
    required = [name for name in schema.get("required") or [] if isinstance(name, str)]
    missing = [name for name in required if name not in content]
    if missing:
        return None, f"no default for required field(s) {', '.join(sorted(missing))}"
    try:
        validator_class = validator_for(dict(schema))
        problem = next(validator_class(dict(schema)).iter_errors(content), None)
    except (schema_exceptions.SchemaError, TypeError) as error:
        return None, f"the requested schema is not valid: {str(error).splitlines()[0][:120]}"
    if problem is not None:
        return None, f"the defaults do not satisfy the schema: {problem.message[:120]}"
    return content, ""


def elicitation_policy(on_request: OnClientRequest | None = None) -> ElicitationFnT:
    """The SDK elicitation callback: accept with the schema's defaults when they satisfy it, otherwise decline."""

    def report(decision: Decision, detail: str) -> None:
        if on_request is None:
            return
        try:
            on_request(ClientRequestRecord(method="elicitation/create", decision=decision, detail=detail))
        except Exception:
            logger.exception("the client request hook failed")

    async def answer(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        if isinstance(params, types.ElicitRequestURLParams):
            report("declined", "URL mode: no person is there to open the page")
            return types.ElicitResult(action="decline")
        content, why_not = defaults_answer(params.requested_schema or {})
        if content is None:
            report("declined", why_not)
            return types.ElicitResult(action="decline")
        report("accepted", f"with the schema's defaults for {', '.join(sorted(content)) or 'no fields'}")
        return types.ElicitResult(action="accept", content=content)

    return answer
