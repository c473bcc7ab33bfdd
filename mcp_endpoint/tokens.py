"""The signed-in user's own API token (DRF's `authtoken` Token: the key of `/api/auth/token/`, of
`Authorization: Token` on the REST API and of `Authorization: Bearer` on the MCP endpoint).

One token per user (the model's one-to-one). Replacing it deletes the old row before making a new one, so the old
key stops working at once: deleting a Token clears the per-process caller cache (`orchestrator_site.async_api`,
which the MCP endpoint's Bearer check reads too); other processes drop it within `API_CALLER_CACHE_SECONDS`.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework.authtoken.models import Token


def token_of(user: AbstractBaseUser) -> Token | None:
    return Token.objects.filter(user=user).first()


@transaction.atomic
def token_replace(*, user: AbstractBaseUser) -> Token:
    """A new token for `user`; the old one, if any, revoked. The new key is only ever seen in what this returns."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


def token_revoke(*, user: AbstractBaseUser) -> bool:
    """Revoke `user`'s token; whether there was one."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return deleted > 0
