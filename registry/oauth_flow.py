"""A person's authorization of a server behind OAuth ("Authorize" on the server page, then `/oauth/callback/`).

The SDK's flow runs on the fleet loop as one task per authorization (`mcp_client.oauth.authorize` with a
`PersonApproval`): discovery, client registration, PKCE, then it waits for the person. "Authorize" starts it and
takes the authorization URL it produces (with the `state` the SDK chose); the callback hands the authorization
response to the waiting task, which exchanges the code and stores the grant (`DatabaseGrantStore`, encrypted).

Pending authorizations live in this process, on the fleet loop, keyed by state: the browser comes back to the
process that sent it (the embedded deployment; with several web processes the callback needs sticky sessions).
Each ends within `PERSON_APPROVAL_SECONDS` whatever the person does.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from mcp.shared.auth import AuthorizationCodeResult

from mcp_client.oauth import AuthorizationNeeded, OAuthSettings, PersonApproval, authorize
from mcp_client.outbound import OutboundPolicy

logger = logging.getLogger(__name__)

# How long "Authorize" waits for discovery and registration to produce the authorization URL, and the callback for
# the token exchange.
AUTHORIZE_STEP_SECONDS = 20.0


@dataclass
class PendingAuthorization:
    server: str
    approval: PersonApproval
    task: asyncio.Task[None]


# state -> the authorization waiting for its person (touched only on the fleet loop). A process-wide table on
# purpose: the callback that completes an authorization is a later request than the one that started it.
_PENDING: dict[str, PendingAuthorization] = {}


def _state_of(authorization_url: str) -> str:
    state = parse_qs(urlsplit(authorization_url).query).get("state", [""])[0]
    if not state:
        raise AuthorizationNeeded("the authorization URL carries no state")
    return state


async def begin(*, server: str, url: str, settings: OAuthSettings, outbound: OutboundPolicy) -> tuple[str, str] | None:
    """Start a person's authorization (on the fleet loop): (state, authorization URL), or None when the server let
    us in without one (the stored grant is good, or it asks for none)."""
    approval = PersonApproval()
    task = asyncio.get_running_loop().create_task(
        authorize(url, settings, approval, outbound=outbound), name=f"oauth-authorize:{server}"
    )
    done, _ = await asyncio.wait(
        [approval.authorization_url, task], timeout=AUTHORIZE_STEP_SECONDS, return_when=asyncio.FIRST_COMPLETED
    )
    if approval.authorization_url.done():
        authorization_url = approval.authorization_url.result()
        state = _state_of(authorization_url)
        _PENDING[state] = PendingAuthorization(server, approval, task)
        task.add_done_callback(lambda finished: _ended(state, finished))
        return state, authorization_url
    if task.done():
        task.result()  # its error says why (AuthorizationNeeded, the SDK's OAuthFlowError, an HTTP error)
        return None
    task.cancel()
    raise AuthorizationNeeded("the authorization server did not answer in time")


def _ended(state: str, task: asyncio.Task[None]) -> None:
    pending = _PENDING.get(state)
    if pending is not None and pending.task is task:
        del _PENDING[state]
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.info("OAuth authorization of %r ended without a grant: %s", pending.server if pending else "?", error)


async def finish(*, state: str, response: AuthorizationCodeResult) -> str:
    """Hand the authorization response to the authorization waiting for it (on the fleet loop) and wait until the
    grant is stored. Returns the server's name; LookupError when no authorization waits for this state."""
    pending = _PENDING.pop(state, None)
    if pending is None:
        raise LookupError("no authorization is waiting for this state (expired, finished, or another process)")
    pending.approval.respond(response)
    await asyncio.wait_for(asyncio.shield(pending.task), AUTHORIZE_STEP_SECONDS)
    return pending.server


async def refuse(*, state: str, why: str) -> str | None:
    """The authorization server sent the person back with an error: end the waiting authorization."""
    pending = _PENDING.pop(state, None)
    if pending is None:
        return None
    pending.approval.fail(why)
    return pending.server
