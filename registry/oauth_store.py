"""A server's OAuth grant in the database, and its OAuth settings as the connection layer wants them.

`DatabaseGrantStore` is the SDK's `TokenStorage` (via `mcp_client.oauth.GrantStore`) over the `OAuthGrant` row:
every value encrypted (registry/oauth_crypto.py). Its methods are awaited on the fleet loop, inside a session's
HTTP auth flow, so the ORM runs in a worker thread (`sync_to_async(thread_sensitive=False)`: a grant write is rare and
small, and must not queue behind the fleet's database threads or block the loop). While the store holds tokens, a
`Redactor` of them keeps them out of every log record and error text.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from mcp_client.oauth import GrantStore, MemoryGrantStore, OAuthSettings, remaining_lifetime
from mcp_client.redaction import Redactor

from .models import OAuthGrant, Server
from .oauth_crypto import UnreadableSecret, decrypt, encrypt

logger = logging.getLogger(__name__)

# The callback URL when none is configured and no request says how the browser reaches us: only a target's
# placeholder (a pre-registered client or a refresh never sends it; a person's authorization uses the request's).
PLACEHOLDER_REDIRECT_URI = "http://127.0.0.1/oauth/callback/"

# The settings a definition's `oauth` object may hold (the client secret travels apart: write-only, encrypted).
OAUTH_FIELDS = (
    "grant",
    "registration",
    "client_id",
    "scope",
    "client_metadata_url",
    "token_endpoint_auth_method",
    "issuer",
)


def redirect_uri(request_uri: str | None = None) -> str:
    """The callback URL for authorization servers: the setting, else as the person's browser reached us."""
    return settings.OAUTH_REDIRECT_URI or request_uri or PLACEHOLDER_REDIRECT_URI


def oauth_settings_for(
    server: Server, *, store: GrantStore | None = None, callback_url: str = ""
) -> OAuthSettings | None:
    """A server row's OAuth settings for its target (None without OAuth). No query: the client secret is on the
    row (encrypted), the grant is read by the store when a session needs it."""
    if not server.oauth:
        return None
    values = {name: server.oauth.get(name) or "" for name in OAUTH_FIELDS}
    try:
        client_secret = decrypt(server.oauth_client_secret)
    except UnreadableSecret as error:
        raise ValueError(f"server {server.name!r}: {error}") from None
    return OAuthSettings(
        grant=values["grant"] or "authorization_code",
        registration=values["registration"] or "dynamic",
        client_id=values["client_id"],
        client_secret=client_secret,
        scope=values["scope"],
        client_metadata_url=values["client_metadata_url"],
        token_endpoint_auth_method=values["token_endpoint_auth_method"],
        issuer=values["issuer"],
        redirect_uri=redirect_uri(callback_url or None),
        store=store or DatabaseGrantStore(server.pk),
    )


def _aware(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, tz=UTC) if timestamp is not None else None


class DatabaseGrantStore:
    """One server's grant in its `OAuthGrant` row (made on the first write)."""

    def __init__(self, server_id: int) -> None:
        self.server_id = server_id
        # The values held now (the current tokens, the registered client's secret): hidden from logs while held.
        self._tokens: tuple[str | None, ...] = ()
        self._client_secret: str | None = None
        self._redactor = Redactor()
        # Why a person must authorize again, as last read or written (the row's `needs_authorization`).
        self.forgotten_because: str | None = None

    def _hide(self) -> None:
        self._redactor = Redactor([value for value in (*self._tokens, self._client_secret) if value])

    # -- the ORM side (worker thread) --

    def _row(self) -> OAuthGrant | None:
        return OAuthGrant.objects.filter(server_id=self.server_id).first()

    def _read_tokens(self) -> OAuthToken | None:
        row = self._row()
        self.forgotten_because = row.needs_authorization if row is not None and row.needs_authorization else None
        if row is None or not row.access_token:
            return None
        try:
            access, refresh = decrypt(row.access_token), decrypt(row.refresh_token)
        except UnreadableSecret:
            logger.warning("OAuth grant of server id %s cannot be decrypted: authorize again", self.server_id)
            return None
        self._tokens = (access, refresh)
        self._hide()
        expires_at = row.expires_at.timestamp() if row.expires_at else None
        return OAuthToken(
            access_token=access,
            token_type="Bearer",
            expires_in=remaining_lifetime(expires_at),
            refresh_token=refresh or None,
            scope=row.scope or None,
        )

    def _write_tokens(self, tokens: OAuthToken) -> None:
        self._tokens = (tokens.access_token, tokens.refresh_token)
        self.forgotten_because = None
        self._hide()
        expires_at = timezone.now().timestamp() + int(tokens.expires_in) if tokens.expires_in is not None else None
        OAuthGrant.objects.update_or_create(
            server_id=self.server_id,
            defaults={
                "access_token": encrypt(tokens.access_token),
                "refresh_token": encrypt(tokens.refresh_token or ""),
                "token_type": tokens.token_type[:32],
                "scope": tokens.scope or "",
                "expires_at": _aware(expires_at),
                "needs_authorization": "",
                "authorized_at": timezone.now(),
            },
        )

    def _read_client(self) -> OAuthClientInformationFull | None:
        row = self._row()
        if row is None or not row.client_info:
            return None
        try:
            client = OAuthClientInformationFull.model_validate_json(decrypt(row.client_info))
        except (UnreadableSecret, ValueError):
            return None
        self._client_secret = client.client_secret
        self._hide()
        return client

    def _write_client(self, client: OAuthClientInformationFull) -> None:
        self._client_secret = client.client_secret
        self._hide()
        OAuthGrant.objects.update_or_create(
            server_id=self.server_id,
            defaults={"client_info": encrypt(json.dumps(client.model_dump(mode="json", exclude_none=True)))},
        )

    def _forget(self, why: str) -> None:
        self.forgotten_because = why
        self._tokens = ()
        self._hide()
        OAuthGrant.objects.update_or_create(
            server_id=self.server_id,
            defaults={"access_token": "", "refresh_token": "", "expires_at": None, "needs_authorization": why[:300]},
        )

    # -- the SDK's TokenStorage (awaited on the fleet loop) --

    async def get_tokens(self) -> OAuthToken | None:
        return await sync_to_async(self._read_tokens, thread_sensitive=False)()

    async def set_tokens(self, tokens: OAuthToken) -> None:
        await sync_to_async(self._write_tokens, thread_sensitive=False)(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return await sync_to_async(self._read_client, thread_sensitive=False)()

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await sync_to_async(self._write_client, thread_sensitive=False)(client_info)

    async def forget_tokens(self, why: str) -> None:
        await sync_to_async(self._forget, thread_sensitive=False)(why)


def grant_state(server: Server) -> dict[str, object]:
    """What the API and the server page may show of a grant: whether there is one and why a person is needed,
    never a token."""
    row = OAuthGrant.objects.filter(server=server).first()
    if row is None:
        return {"authorized": False, "needs_authorization": "", "authorized_at": None, "scope": ""}
    return {
        "authorized": bool(row.access_token),
        "needs_authorization": row.needs_authorization,
        "authorized_at": row.authorized_at,
        "scope": row.scope,
    }


class _ReadOnlyGrant:
    """A stored grant as "test connection" may use it: the access token as it is, never refreshed or written (a
    refresh would rotate the refresh token under the running session's feet)."""

    def __init__(self, store: DatabaseGrantStore) -> None:
        self._store = store
        self.forgotten_because: str | None = None

    async def get_tokens(self) -> OAuthToken | None:
        tokens = await self._store.get_tokens()
        self.forgotten_because = self._store.forgotten_because
        return tokens.model_copy(update={"refresh_token": None}) if tokens is not None else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        return None

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return await self._store.get_client_info()

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        return None

    async def forget_tokens(self, why: str) -> None:
        return None


def oauth_settings_for_check(definition: dict[str, Any]) -> OAuthSettings | None:
    """The OAuth of a definition being tried ("test connection"), as validated (`oauth` without the secret,
    `oauth_client_secret` encrypted). Client credentials run for real with a grant held only for the check; an
    authorization code uses the stored server's grant read-only (same name and URL), else says a person is needed."""
    oauth = definition.get("oauth")
    if not oauth:
        return None
    stored = Server.objects.filter(name=definition.get("name") or "", url=definition.get("url") or "").first()
    secret = definition.get("oauth_client_secret")
    if secret is None and stored is not None:
        secret = stored.oauth_client_secret
    grant: GrantStore = MemoryGrantStore()
    if stored is not None and oauth.get("grant") != "client_credentials":
        grant = _ReadOnlyGrant(DatabaseGrantStore(stored.pk))
    return OAuthSettings(
        grant=oauth.get("grant") or "authorization_code",
        registration=oauth.get("registration") or "dynamic",
        client_id=oauth.get("client_id") or "",
        client_secret=decrypt(secret or ""),
        scope=oauth.get("scope") or "",
        client_metadata_url=oauth.get("client_metadata_url") or "",
        token_endpoint_auth_method=oauth.get("token_endpoint_auth_method") or "",
        issuer=oauth.get("issuer") or "",
        redirect_uri=redirect_uri(),
        store=grant,
    )
