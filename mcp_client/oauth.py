"""OAuth for servers behind the MCP authorization flow, built on the SDK's client support.

The SDK's `OAuthClientProvider` (an `httpx2.Auth`) already does the protocol: protected resource metadata from
`WWW-Authenticate` or the well-known paths, authorization server metadata, dynamic client registration or a
client ID metadata document, PKCE, scope selection and step-up, refresh, and the client-credentials grant
(`ClientCredentialsOAuthProvider`). What it lacks, and what this module adds:

- A value for a target (`OAuthSettings`, hashable like the rest of `ServerTarget`) saying which grant and which
  client registration a server uses, and the store of its grant (`GrantStore`) which the registry backs with the
  database (encrypted) and the probe with memory.
- An access token's expiry survives a reconnect (the SDK keeps it only in memory, so a token loaded from storage
  looked valid forever and the first 401 forced a full authorization), and it is refreshed a little before it
  expires rather than after a request failed with it.
- Who approves an authorization code grant: nobody in the fleet (`AuthorizationNeeded`: a person must press
  "Authorize"), an HTTP client following the authorization server's redirect for an authorization server that
  approves without a person (`HeadlessApproval`: the probe and the conformance suite), or a person in the browser
  (`PersonApproval`, driven by the registry's `/oauth/callback/`).
- Every secret it holds (client secret, access and refresh tokens) kept in a `Redactor` while it lives, so it is
  scrubbed from every log record and from the errors that leave the connection layer.

Requests the flow makes (metadata, registration, token) go through the session's own httpx2 client, whose
transport enforces the outbound address policy at every connect: authorization servers are judged like servers.
No Django here.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field, fields
from typing import Literal, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.auth.oauth2 import OAuthContext
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from .outbound import OutboundPolicy
from .redaction import Redactor

logger = logging.getLogger(__name__)

GrantType = Literal["authorization_code", "client_credentials"]
Registration = Literal["pre_registered", "dynamic", "metadata_document"]
TokenEndpointAuth = Literal["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]

GRANT_TYPES: tuple[str, ...] = ("authorization_code", "client_credentials")
REGISTRATIONS: tuple[str, ...] = ("pre_registered", "dynamic", "metadata_document")
TOKEN_ENDPOINT_AUTH_METHODS: tuple[str, ...] = ("client_secret_basic", "client_secret_post", "none", "private_key_jwt")

# An access token is refreshed this share of its lifetime before it expires (at most REFRESH_EARLY_MAX_SECONDS
# before), so a request in flight never carries a token that expires on the way.
REFRESH_EARLY_SHARE = 0.2
REFRESH_EARLY_MAX_SECONDS = 60.0
# How long a person has to approve in the browser before the pending authorization is given up.
PERSON_APPROVAL_SECONDS = 600.0
# A headless approval's one request to the authorization endpoint.
HEADLESS_APPROVAL_TIMEOUT = 20.0


class AuthorizationNeeded(Exception):
    """A person must authorize (again): there is no grant, the refresh token was refused, or the server asks for
    more scope than was granted. The connection layer reports it as "authorization needed: <why>"."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class GrantStore(TokenStorage, Protocol):
    """Where a server's grant lives: the SDK's `TokenStorage` (tokens, registered client), with the expiry of the
    access token kept as an absolute time so that it survives a reconnect (`get_tokens` answers `expires_in` as
    what is left of it)."""

    async def forget_tokens(self, why: str) -> None:
        """The grant is no longer good (its refresh was refused): drop the tokens, remember why."""
        ...


def remaining_lifetime(expires_at: float | None) -> int | None:
    """`expires_in` for a token whose absolute expiry is `expires_at` (never negative)."""
    if expires_at is None:
        return None
    return max(0, int(expires_at - time.time()))


def absolute_expiry(token: OAuthToken) -> float | None:
    return time.time() + int(token.expires_in) if token.expires_in is not None else None


class MemoryGrantStore:
    """A grant held in memory (the probe, tests). Its secrets are scrubbed from logs while it holds them."""

    def __init__(self, client_info: OAuthClientInformationFull | None = None) -> None:
        self._tokens: OAuthToken | None = None
        self._expires_at: float | None = None
        self._client_info = client_info
        self.forgotten_because: str | None = None
        self._redactor = Redactor()
        self._hide()

    def _hide(self) -> None:
        values = [
            self._tokens.access_token if self._tokens else None,
            self._tokens.refresh_token if self._tokens else None,
            self._client_info.client_secret if self._client_info else None,
        ]
        self._redactor = Redactor([value for value in values if value])

    async def get_tokens(self) -> OAuthToken | None:
        if self._tokens is None:
            return None
        return self._tokens.model_copy(update={"expires_in": remaining_lifetime(self._expires_at)})

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self._tokens, self._expires_at = tokens, absolute_expiry(tokens)
        self.forgotten_because = None
        self._hide()

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self._client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self._client_info = client_info
        self._hide()

    async def forget_tokens(self, why: str) -> None:
        self._tokens, self._expires_at, self.forgotten_because = None, None, why
        self._hide()


class Approval(Protocol):
    """Who approves an authorization code grant: the SDK's redirect handler and callback handler."""

    async def redirect(self, authorization_url: str) -> None: ...

    async def callback(self) -> AuthorizationCodeResult: ...


class NoPersonHere:
    """The fleet's approval: nobody can approve from inside a session, so the session stops and says so."""

    def __init__(self, why: Callable[[str], str | None] = lambda authorization_url: None) -> None:
        self._why = why

    async def redirect(self, authorization_url: str) -> None:
        raise AuthorizationNeeded(self._why(authorization_url) or "no grant yet: press Authorize on the server's page")

    async def callback(self) -> AuthorizationCodeResult:  # pragma: no cover - redirect always raises first
        raise AuthorizationNeeded("no grant yet: press Authorize on the server's page")


def code_from_redirect(location: str) -> AuthorizationCodeResult:
    """The authorization response carried by a redirect to our callback URL (RFC 6749 §4.1.2, RFC 9207 `iss`)."""
    query = parse_qs(urlsplit(location).query)
    if "error" in query:
        description = query.get("error_description", [""])[0]
        raise AuthorizationNeeded(f"the authorization server refused: {query['error'][0]} {description}".strip())
    if "code" not in query:
        raise AuthorizationNeeded("the authorization server's redirect carried no code")
    return AuthorizationCodeResult(
        code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
    )


class HeadlessApproval:
    """For an authorization server that approves without a person (the conformance suite's, a test's): open the
    authorization URL with an HTTP client that follows nothing, and take the code from its redirect."""

    def __init__(self, outbound: OutboundPolicy | None = None, timeout: float = HEADLESS_APPROVAL_TIMEOUT) -> None:
        self._outbound = outbound
        self._timeout = timeout
        self._result: AuthorizationCodeResult | None = None

    def _client(self) -> httpx2.AsyncClient:
        transport = self._outbound.transport() if self._outbound is not None else httpx2.AsyncHTTPTransport()
        return httpx2.AsyncClient(transport=transport, timeout=self._timeout, follow_redirects=False)

    async def redirect(self, authorization_url: str) -> None:
        async with self._client() as client:
            response = await client.get(authorization_url)
        location = response.headers.get("location")
        if not response.is_redirect or not location:
            raise AuthorizationNeeded(
                f"the authorization server did not approve without a person (HTTP {response.status_code})"
            )
        self._result = code_from_redirect(location)

    async def callback(self) -> AuthorizationCodeResult:
        result, self._result = self._result, None
        if result is None:
            raise AuthorizationNeeded("no authorization response")
        return result


class PersonApproval:
    """A person in the browser: the authorization URL is handed to whoever waits for it (the "Authorize" view),
    then the flow waits until `/oauth/callback/` hands back the authorization response (or gives up)."""

    def __init__(self, timeout: float = PERSON_APPROVAL_SECONDS) -> None:
        loop = asyncio.get_running_loop()
        self.authorization_url: asyncio.Future[str] = loop.create_future()
        self._response: asyncio.Future[AuthorizationCodeResult] = loop.create_future()
        self._timeout = timeout

    async def redirect(self, authorization_url: str) -> None:
        if not self.authorization_url.done():
            self.authorization_url.set_result(authorization_url)

    async def callback(self) -> AuthorizationCodeResult:
        try:
            return await asyncio.wait_for(asyncio.shield(self._response), self._timeout)
        except TimeoutError:
            raise AuthorizationNeeded("nobody approved in time: press Authorize again") from None

    def respond(self, result: AuthorizationCodeResult) -> None:
        """The authorization response arrived at our callback (call on the loop that runs the flow)."""
        if not self._response.done():
            self._response.set_result(result)

    def fail(self, why: str) -> None:
        if not self._response.done():
            self._response.set_exception(AuthorizationNeeded(why))


@dataclass(frozen=True)
class OAuthSettings:
    """How a server's OAuth works for us. Part of a `ServerTarget`: compared by value, except the grant store and
    the approval, which are where the grant lives and who approves it, not what it is."""

    grant: GrantType = "authorization_code"
    registration: Registration = "dynamic"
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    # Space-separated; empty lets the server's challenge or metadata decide (the SDK's scope selection).
    scope: str = ""
    # The client ID metadata document's URL (registration "metadata_document"): an https URL with a path.
    client_metadata_url: str = ""
    # Where the authorization server sends the person back: our /oauth/callback/ (authorization code only).
    redirect_uri: str = ""
    token_endpoint_auth_method: TokenEndpointAuth | Literal[""] = ""
    # The authorization server the pre-registered credentials belong to (optional: then whichever discovery finds).
    issuer: str = ""
    client_name: str = "MCP Orchestrator"
    store: GrantStore = field(default_factory=MemoryGrantStore, compare=False, repr=False)
    approval: Approval | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.grant not in GRANT_TYPES:
            raise ValueError(f"oauth.grant must be one of {', '.join(GRANT_TYPES)}, got {self.grant!r}")
        if self.registration not in REGISTRATIONS:
            raise ValueError(f"oauth.registration must be one of {', '.join(REGISTRATIONS)}, got {self.registration!r}")
        if self.token_endpoint_auth_method and self.token_endpoint_auth_method not in TOKEN_ENDPOINT_AUTH_METHODS:
            raise ValueError(
                "oauth.token_endpoint_auth_method must be one of "
                f"{', '.join(TOKEN_ENDPOINT_AUTH_METHODS)}, got {self.token_endpoint_auth_method!r}"
            )
        if self.token_endpoint_auth_method == "private_key_jwt":
            if self.grant != "client_credentials":
                raise ValueError(
                    "oauth.token_endpoint_auth_method: private_key_jwt goes with the client_credentials grant"
                )
            signing_algorithm(self.client_secret)  # the PEM private key: refused here if it is none
        if self.grant == "client_credentials":
            if self.registration != "pre_registered":
                raise ValueError("oauth: the client_credentials grant needs a pre_registered client")
            if not self.client_secret:
                raise ValueError("oauth.client_secret: the client_credentials grant needs the client's secret")
        if self.registration == "pre_registered" and not self.client_id:
            raise ValueError("oauth.client_id: a pre_registered client needs its client_id")
        if self.registration == "metadata_document" and not self.client_metadata_url:
            raise ValueError("oauth.client_metadata_url: a metadata_document registration needs the document's URL")
        if self.grant == "authorization_code" and not self.redirect_uri:
            raise ValueError("oauth.redirect_uri: the authorization_code grant needs the callback URL")

    @property
    def secret_values(self) -> list[str]:
        return [self.client_secret] if self.client_secret else []

    def auth_method(self) -> TokenEndpointAuth:
        if self.token_endpoint_auth_method:
            return self.token_endpoint_auth_method
        return "client_secret_basic" if self.client_secret else "none"

    def with_runtime(self, *, store: GrantStore | None = None, approval: Approval | None = None) -> OAuthSettings:
        """The same settings with another store or approval (a headless run, a person's authorization)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if store is not None:
            values["store"] = store
        if approval is not None:
            values["approval"] = approval
        return OAuthSettings(**values)


class _EarlyRefreshContext(OAuthContext):
    """The SDK's flow context, refreshing an access token a little before it expires."""

    token_lifetime: float | None = None

    def update_token_expiry(self, token: OAuthToken) -> None:
        super().update_token_expiry(token)
        self.token_lifetime = float(token.expires_in) if token.expires_in is not None else None

    def is_token_valid(self) -> bool:
        if not super().is_token_valid():
            return False
        if self.token_expiry_time is None or not self.token_lifetime:
            return True
        early = min(REFRESH_EARLY_MAX_SECONDS, self.token_lifetime * REFRESH_EARLY_SHARE)
        return time.time() <= self.token_expiry_time - early


def _early_refresh(context: OAuthContext) -> _EarlyRefreshContext:
    return _EarlyRefreshContext(**{f.name: getattr(context, f.name) for f in fields(context)})


class _GrantKeeping:
    """What both providers add to the SDK's: the expiry restored from the store, a refused refresh remembered (and
    the tokens dropped) so the fleet can say why a person must authorize again."""

    context: OAuthContext
    _initialized: bool
    _store: GrantStore
    refresh_refused: str | None = None

    async def _auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """The SDK's flow, with two additions. When we hold no usable token, the store is read again: a person's
        authorization (another provider, the same store) may have stored a grant since this one gave up. And when
        the server refuses an access token we still hold a refresh token for (revoked early, or the server forgot
        it), the token is refreshed and the request sent again once, before the SDK's full authorization (which
        in the fleet means "a person must authorize")."""
        if self._initialized and not self.context.is_token_valid() and not self.context.can_refresh_token():
            self._initialized = False
        refreshed_after_refusal = False
        while True:
            flow = super()._auth_flow(request)  # type: ignore[misc]
            refused = False
            try:
                outgoing = await flow.__anext__()
                while True:
                    sent_token = outgoing is request and "Authorization" in outgoing.headers
                    response = yield outgoing
                    if (
                        sent_token
                        and response.status_code == 401
                        and not refreshed_after_refusal
                        and self.context.can_refresh_token()
                    ):
                        refused = True
                        break
                    outgoing = await flow.asend(response)
            except StopAsyncIteration:
                return
            finally:
                await flow.aclose()  # releases the SDK flow's lock
            if not refused:
                return
            refreshed_after_refusal = True
            self.context.token_expiry_time = 0.0  # the SDK's next pass refreshes before sending

    async def _restore_tokens(self) -> None:
        tokens = await self._store.get_tokens()
        self.context.current_tokens = tokens
        if tokens is not None:
            self.refresh_refused = None  # a grant stored since (a person authorized again)
            if tokens.expires_in is not None:
                self.context.update_token_expiry(tokens)

    async def _note_refresh(self, response: httpx2.Response, refreshed: bool) -> None:
        if refreshed:
            self.refresh_refused = None
            return
        error = ""
        try:
            await response.aread()
            body = response.json() if response.status_code != 200 else {}
            error = str(body.get("error", "")) if isinstance(body, dict) else ""
        except (ValueError, httpx2.HTTPError):
            pass
        self.refresh_refused = (
            f"the refresh token was refused (HTTP {response.status_code}{', ' + error[:80] if error else ''})"
        )
        await self._store.forget_tokens(self.refresh_refused)


class _KeepRegistrationsInMemory:
    """A grant store whose registered client is not written back (the fleet's sessions: see below)."""

    def __init__(self, store: GrantStore) -> None:
        self._store = store

    async def get_tokens(self) -> OAuthToken | None:
        return await self._store.get_tokens()

    async def set_tokens(self, tokens: OAuthToken) -> None:
        await self._store.set_tokens(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return await self._store.get_client_info()

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        return None

    async def forget_tokens(self, why: str) -> None:
        await self._store.forget_tokens(why)


class AuthorizationCodeProvider(_GrantKeeping, OAuthClientProvider):
    """Authorization code with PKCE: the SDK's provider with the grant kept across reconnects."""

    def __init__(self, server_url: str, settings: OAuthSettings, approval: Approval) -> None:
        metadata = OAuthClientMetadata(
            client_name=settings.client_name,
            redirect_uris=[AnyUrl(settings.redirect_uri)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method=settings.auth_method(),
            scope=settings.scope or None,
        )
        super().__init__(
            server_url=server_url,
            client_metadata=metadata,
            storage=settings.store,
            redirect_handler=approval.redirect,
            callback_handler=approval.callback,
            client_metadata_url=settings.client_metadata_url or None,
        )
        self.context = _early_refresh(self.context)
        self._store = settings.store
        self._approves = not isinstance(approval, NoPersonHere)
        if not self._approves:
            # A session cannot finish an authorization code grant, so a client it registers on the way to "a person
            # must authorize" is of no use, and storing it could land over the one a person's authorization is
            # storing at the same moment (whose tokens would then be refreshed as the wrong client).
            self.context.storage = _KeepRegistrationsInMemory(settings.store)
        self._fixed_client: OAuthClientInformationFull | None = None
        if settings.registration == "pre_registered":
            self._fixed_client = OAuthClientInformationFull(
                client_id=settings.client_id,
                client_secret=settings.client_secret or None,
                redirect_uris=[AnyUrl(settings.redirect_uri)],
                token_endpoint_auth_method=settings.auth_method(),
                scope=settings.scope or None,
            )

    async def _initialize(self) -> None:
        await self._restore_tokens()
        client = self._fixed_client or await self._store.get_client_info()
        if (
            client is not None
            and client is not self._fixed_client
            and self._approves
            and not self._redirects_here(client)
        ):
            # A person (or a headless approval) is about to be sent to the authorization server, and the stored client
            # was registered for another callback URL (the fleet's placeholder, another host name): the authorization
            # server would refuse ours, so this flow registers anew. The fleet keeps it: a refresh sends no redirect.
            client = None
        self.context.client_info = client
        self._initialized = True

    def _redirects_here(self, client: OAuthClientInformationFull) -> bool:
        wanted = [str(uri) for uri in self.context.client_metadata.redirect_uris or []]
        registered = [str(uri) for uri in client.redirect_uris or []]
        return not wanted or not registered or wanted[0] in registered

    async def _handle_refresh_response(self, response: httpx2.Response) -> bool:
        refreshed = await super()._handle_refresh_response(response)
        await self._note_refresh(response, refreshed)
        return refreshed


class ClientCredentialsProvider(_GrantKeeping, ClientCredentialsOAuthProvider):
    """Client credentials (a service account): the SDK's provider, its token's expiry kept and refreshed early."""

    def __init__(self, server_url: str, settings: OAuthSettings) -> None:
        method = settings.auth_method()
        super().__init__(
            server_url=server_url,
            storage=settings.store,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            token_endpoint_auth_method="client_secret_post"
            if method == "client_secret_post"
            else "client_secret_basic",  # noqa: E501
            scope=settings.scope or None,
            issuer=settings.issuer or None,
        )
        self.context = _early_refresh(self.context)
        self._store = settings.store

    async def _initialize(self) -> None:
        await self._restore_tokens()
        self.context.client_info = self._fixed_client_info
        self._initialized = True

    async def _handle_refresh_response(self, response: httpx2.Response) -> bool:
        refreshed = await super()._handle_refresh_response(response)
        # A refused refresh is no reason for a person: the next request gets a fresh token with the credentials.
        if refreshed:
            self.refresh_refused = None
        return refreshed


def signing_algorithm(private_key_pem: str) -> str:
    """The JWS algorithm for a PEM private key (private_key_jwt client authentication); ValueError if it is none."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("oauth.client_secret: private_key_jwt needs an unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(key.curve.name, "ES256")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ValueError("oauth.client_secret: private_key_jwt takes an RSA, EC or Ed25519 private key")


class PrivateKeyJwtProvider(_GrantKeeping, PrivateKeyJWTOAuthProvider):
    """Client credentials authenticated with a signed JWT (RFC 7523, private_key_jwt): the key is the client secret."""

    def __init__(self, server_url: str, settings: OAuthSettings) -> None:
        signer = SignedJWTParameters(
            issuer=settings.client_id,
            subject=settings.client_id,
            signing_key=settings.client_secret,
            signing_algorithm=signing_algorithm(settings.client_secret),
        )
        super().__init__(
            server_url=server_url,
            storage=settings.store,
            client_id=settings.client_id,
            assertion_provider=signer.create_assertion_provider(),
            scope=settings.scope or None,
            issuer=settings.issuer or None,
        )
        self.context = _early_refresh(self.context)
        self._store = settings.store

    async def _initialize(self) -> None:
        await self._restore_tokens()
        self.context.client_info = self._fixed_client_info
        self._initialized = True


OAuthProvider = AuthorizationCodeProvider | ClientCredentialsProvider | PrivateKeyJwtProvider


# The provider of each grant store, kept while the store lives: a server's next session reuses what the last one
# discovered (the authorization server's metadata: its token endpoint is where a refresh goes) instead of starting
# again from a 401. Keyed weakly by the store, which the server's target holds; replaced when the settings change.
_SESSION_PROVIDERS: weakref.WeakKeyDictionary[object, tuple[str, OAuthSettings, OAuthProvider]] = (
    weakref.WeakKeyDictionary()
)


def session_auth(server_url: str, settings: OAuthSettings) -> OAuthProvider:
    """The `httpx2.Auth` for a session of a server behind OAuth, shared by its successive sessions."""
    kept = _SESSION_PROVIDERS.get(settings.store)
    if kept is not None and kept[0] == server_url and kept[1] == settings:
        return kept[2]
    provider = build_auth(server_url, settings)
    _SESSION_PROVIDERS[settings.store] = (server_url, settings, provider)
    return provider


def _why_a_person_is_needed(
    provider: AuthorizationCodeProvider, store: GrantStore, authorization_url: str
) -> str | None:
    granted = set((provider.context.current_tokens.scope or "").split()) if provider.context.current_tokens else set()
    asked = set(parse_qs(urlsplit(authorization_url).query).get("scope", [""])[0].split())
    if granted and asked - granted:
        # Step-up: the server answered 403 insufficient_scope; a person must grant the wider scope.
        return f"the server asks for more scope ({' '.join(sorted(asked - granted))[:200]}): authorize again"
    if provider.refresh_refused:
        return provider.refresh_refused
    if forgotten := getattr(store, "forgotten_because", None):
        return str(forgotten)
    if provider.context.current_tokens is not None:
        return "the server refused the access token (revoked?) and there was no refresh that it accepted"
    return None


def build_auth(server_url: str, settings: OAuthSettings, approval: Approval | None = None) -> OAuthProvider:
    """A new `httpx2.Auth` for a server behind OAuth. `approval` defaults to the settings' own, and without one to
    nobody (the fleet: a missing or revoked grant stops the session with `AuthorizationNeeded`)."""
    if settings.grant == "client_credentials":
        if settings.token_endpoint_auth_method == "private_key_jwt":
            return PrivateKeyJwtProvider(server_url, settings)
        return ClientCredentialsProvider(server_url, settings)
    provider: AuthorizationCodeProvider
    chosen = approval or settings.approval
    if chosen is None:
        chosen = NoPersonHere(lambda url: _why_a_person_is_needed(provider, settings.store, url))
    provider = AuthorizationCodeProvider(server_url, settings, chosen)
    return provider


async def authorize(
    server_url: str,
    settings: OAuthSettings,
    approval: Approval,
    *,
    outbound: OutboundPolicy | None = None,
) -> None:
    """Run the authorization once, outside any session: one request to the server with the provider as its auth,
    so that the server's 401 starts the SDK's flow (discovery, registration, approval, token exchange) and the
    grant lands in the settings' store. Whatever the server answers after that does not matter here."""
    provider = build_auth(server_url, settings, approval)
    transport = outbound.transport() if outbound is not None else httpx2.AsyncHTTPTransport()
    body = {"jsonrpc": "2.0", "id": "authorize", "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    # The person's wait is not I/O (the flow awaits the approval between requests): only the requests are timed.
    async with httpx2.AsyncClient(transport=transport, timeout=HEADLESS_APPROVAL_TIMEOUT, auth=provider) as client:
        response = await client.post(server_url, json=body, headers=headers)
        await response.aclose()
    if response.status_code in (401, 403):
        raise AuthorizationNeeded(f"the server still refuses the grant (HTTP {response.status_code})")
    if await settings.store.get_tokens() is None:
        raise AuthorizationNeeded("the authorization ended without a token")
