"""Requests and log messages a server sends its client, relayed to the agent whose call is in flight.

The fleet holds one shared session per server. When an agent calls a server through the orchestrator's pass-through
(`/mcp/servers/<name>/`), what the server sends back *during* that call is meant for that agent: an elicitation, a
sampling or roots request (handshake era: server-to-client requests on the shared session; 2026-07-28 era: they come
inside an `InputRequiredResult`, which the pass-through handles itself and never reaches this module), and
`notifications/message` log entries (both eras).

The SDK's client does not say which of our requests a server request relates to (its Streamable HTTP transport reads
the request off the POST's stream but drops that link), so the relay routes by what is in flight on the session:
- one relayed call in flight (or several, all of one agent session): the request goes to that agent;
- relayed calls of several agent sessions in flight: it cannot tell whose it is, so it declines (elicitation:
  `decline`, sampling: an error, roots: an empty list) and says so in the record; a log entry is dropped;
- no relayed call in flight (a call from health, fusion, the REST API...): the orchestrator's own answers, as before
  the relay existed: elicitation by the defaults policy (client_requests.py), sampling refused with an error, roots
  an empty list (the orchestrator exposes none); a log entry goes nowhere but the notifications stream.

The client declares sampling and roots (the callbacks exist) so that a server can ask an agent for them; without an
agent in flight the answers above are the clean decline.

Lives on the connection's loop (the fleet loop); the agent's side of `RelayedCall` is the caller's business (the
pass-through hands requests over to the web server's loop).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.client.session import ClientRequestContext

from .client_requests import ClientRequestRecord, Decision, OnClientRequest, elicitation_policy

logger = logging.getLogger(__name__)

AskAgent = Callable[[types.InputRequest], Awaitable[types.InputResponse | types.ErrorData]]
TellAgent = Callable[[types.LoggingMessageNotificationParams], None]


@dataclass(eq=False)
class RelayedCall:
    """An agent's call in flight on the shared session: who the agent is, how to ask it, how to tell it."""

    agent: Hashable  # the agent's session: calls of one session count as one agent
    ask: AskAgent | None  # None: this agent cannot be asked mid-call (its era has no back-channel)
    tell: TellAgent
    description: str = ""  # "tools/call test_elicitation by alice", for records
    answered: list[str] = field(default_factory=list)  # methods relayed to this agent (tests, records)


class _Ambiguous:
    def __init__(self, agents: int) -> None:
        self.agents = agents


class ClientRequestRelay:
    """The callbacks of one connection's SDK clients (elicitation, sampling, roots, logging), and the calls in flight
    that they may relay to."""

    def __init__(self, server: str, *, on_request: OnClientRequest | None = None) -> None:
        self._server = server
        self._on_request = on_request
        self._policy = elicitation_policy(on_request)
        self._in_flight: list[RelayedCall] = []
        self.dropped_log_entries = 0

    @contextlib.contextmanager
    def in_flight(self, call: RelayedCall) -> Iterator[RelayedCall]:
        """Around an agent's request on the shared session: what the server asks meanwhile may go to this agent."""
        self._in_flight.append(call)
        try:
            yield call
        finally:
            self._in_flight.remove(call)

    @property
    def calls_in_flight(self) -> int:
        return len(self._in_flight)

    def _target(self) -> RelayedCall | _Ambiguous | None:
        if not self._in_flight:
            return None
        agents = {call.agent for call in self._in_flight}
        if len(agents) > 1:
            return _Ambiguous(len(agents))
        return self._in_flight[0]

    def _report(self, method: str, decision: Decision, detail: str) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(ClientRequestRecord(method=method, decision=decision, detail=detail))
        except Exception:
            logger.exception("the client request hook failed")

    async def _relay(self, method: str, call: RelayedCall, request: types.InputRequest) -> Any:
        assert call.ask is not None
        answer = await call.ask(request)
        call.answered.append(method)
        if isinstance(answer, types.ErrorData):
            self._report(method, "declined", f"the agent refused ({call.description}): {answer.message[:200]}")
        else:
            self._report(method, "accepted", f"relayed to the agent ({call.description})")
        return answer

    def _why_not(self, target: RelayedCall | _Ambiguous) -> str:
        if isinstance(target, _Ambiguous):
            return (
                f"calls of {target.agents} agents are in flight on {self._server!r} and the request does not say "
                "which one it is for"
            )
        return f"the agent's session cannot take requests during a call ({target.description})"

    # -- the SDK callbacks ----------------------------------------------------------------------------------------

    async def elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        target = self._target()
        if target is None:
            return await self._policy(context, params)
        if isinstance(target, RelayedCall) and target.ask is not None:
            return await self._relay("elicitation/create", target, types.ElicitRequest(params=params))
        self._report("elicitation/create", "declined", self._why_not(target))
        return types.ElicitResult(action="decline")

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        target = self._target()
        if isinstance(target, RelayedCall) and target.ask is not None:
            return await self._relay("sampling/createMessage", target, types.CreateMessageRequest(params=params))
        why = "no agent is calling this server through the orchestrator" if target is None else self._why_not(target)
        self._report("sampling/createMessage", "declined", why)
        return types.ErrorData(code=types.INVALID_REQUEST, message=f"Sampling not available: {why}")

    async def roots(self, context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        target = self._target()
        if isinstance(target, RelayedCall) and target.ask is not None:
            return await self._relay("roots/list", target, types.ListRootsRequest())
        if target is not None:
            self._report("roots/list", "declined", self._why_not(target))
        return types.ListRootsResult(roots=[])  # the orchestrator itself exposes no roots

    async def logging(self, params: types.LoggingMessageNotificationParams) -> None:
        target = self._target()
        if isinstance(target, RelayedCall):
            target.tell(params)
        elif isinstance(target, _Ambiguous):
            self.dropped_log_entries += 1
