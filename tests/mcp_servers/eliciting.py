"""An MCP server whose tools ask the client for input (elicitation) and report what came back.

`book_with_defaults`: every field has a default, so a client applying defaults can accept.
`book_without_defaults`: a required field has none, so such a client must decline.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mcp_types as types  # noqa: E402
from _common import parse_args, serve  # noqa: E402
from mcp import MCPError  # noqa: E402
from mcp.server.mcpserver import Context, MCPServer  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

server = MCPServer("eliciting", version="1.0.0")


class WithDefaults(BaseModel):
    seats: int = Field(default=2, description="How many seats")
    window: bool = Field(default=True, description="A window seat")
    name: str = Field(default="Ada", description="Whose booking")


class WithoutDefaults(BaseModel):
    card_number: str = Field(description="Needs a person")
    seats: int = Field(default=1)


async def ask(ctx: Context, message: str, schema: type[BaseModel]) -> str | types.InputRequiredResult:
    """Elicit in either era: a request to the client on 2025-11-25, an input-required result on 2026-07-28."""
    responses = ctx.input_responses or {}
    if "form" in responses:  # 2026-07-28: the client's answer to our input-required result
        answer = responses["form"]
        assert isinstance(answer, types.ElicitResult)
        return f"{answer.action}: {json.dumps(answer.content)}" if answer.action == "accept" else answer.action
    try:
        result = await ctx.elicit(message, schema)
    except MCPError:  # no back-channel: the 2026-07-28 era
        params = types.ElicitRequestFormParams(message=message, requested_schema=schema.model_json_schema())
        return types.InputRequiredResult(input_requests={"form": types.ElicitRequest(params=params)})
    return f"{result.action}: {result.data.model_dump_json()}" if result.action == "accept" else result.action


@server.tool()
async def book_with_defaults(ctx: Context) -> str | types.InputRequiredResult:
    return await ask(ctx, "Book a table", WithDefaults)


@server.tool()
async def book_without_defaults(ctx: Context) -> str | types.InputRequiredResult:
    return await ask(ctx, "Pay for the table", WithoutDefaults)


if __name__ == "__main__":
    serve(server, parse_args())
