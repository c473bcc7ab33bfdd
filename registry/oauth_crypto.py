"""OAuth secrets at rest: access and refresh tokens, registered clients and client secrets, encrypted with Fernet
(`cryptography`: AES-128-CBC with an HMAC-SHA256, a timestamp, a well-kept library rather than our own crypto).

The key is `settings.OAUTH_TOKEN_KEY` (a urlsafe base64 32-byte Fernet key; several, comma-separated, to rotate:
the first encrypts, all decrypt). Without it (local use, a fresh clone) one is generated once into the var
directory (`oauth-token-key.txt`, 0600), as the secret key is (orchestrator_site/environment.py): a database copied
without that file holds nothing readable.
"""

from __future__ import annotations

import functools
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from orchestrator_site.environment import local_key

LOCAL_KEY_FILE = "oauth-token-key.txt"


class UnreadableSecret(Exception):
    """A stored secret that the configured keys cannot decrypt (the key changed or the value was altered)."""


def local_token_key(var_dir: Path) -> str:
    """The key for local use when OAUTH_TOKEN_KEY is not set: generated once into `var_dir`, like the secret key."""
    return local_key(var_dir, LOCAL_KEY_FILE, lambda: Fernet.generate_key().decode(), setting="OAUTH_TOKEN_KEY")


@functools.cache
def _fernet_for(keys: str, var_dir: str) -> MultiFernet:
    chosen = [key.strip() for key in keys.split(",") if key.strip()] or [local_token_key(Path(var_dir))]
    try:
        return MultiFernet([Fernet(key) for key in chosen])
    except ValueError as error:
        raise ValueError("OAUTH_TOKEN_KEY must be Fernet keys (urlsafe base64 of 32 bytes), comma-separated") from error


def _fernet() -> MultiFernet:
    return _fernet_for(settings.OAUTH_TOKEN_KEY or "", str(settings.VAR_DIR))


def encrypt(value: str) -> str:
    """The stored form of a secret ("" stays "": nothing to hide)."""
    return _fernet().encrypt(value.encode()).decode() if value else ""


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    try:
        return _fernet().decrypt(stored.encode()).decode()
    except InvalidToken:
        raise UnreadableSecret("a stored OAuth secret cannot be decrypted with OAUTH_TOKEN_KEY") from None
