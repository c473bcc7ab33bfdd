"""What to connect to: an immutable description of one MCP server endpoint.

A `ServerTarget` is a value object. The hub compares the target it is given with the one it is running
to decide whether a server's settings changed, so every field must be hashable and compare by value:
mappings (env, headers) are normalised to sorted tuples of pairs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from .capabilities import CapabilityLimits
from .limits import Limits
from .oauth import OAuthSettings
from .redaction import Redactor

TransportKind = Literal["stdio", "http", "sse"]
ConnectMode = Literal["auto", "legacy"]

TRANSPORTS: tuple[str, ...] = ("stdio", "http", "sse")

Pairs = tuple[tuple[str, str], ...]

# The SDK's stdio_client already merges the target env over `get_default_environment()`, which keeps only
# HOME, LOGNAME, PATH, SHELL, TERM and USER (so secrets in our own environment never leak into third-party
# servers). That list lacks the locale, time zone and temp dir: without LANG/LC_* a Python or Node server
# falls back to ASCII on some systems, and without TZ time tools answer in UTC. We add these few, harmless
# variables on top; anything else must be set explicitly in the target's env.
EXTRA_INHERITED_ENV: tuple[str, ...] = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def _pairs(value: Mapping[str, str] | Iterable[tuple[str, str]] | None, what: str) -> Pairs:
    """Normalise a mapping (or iterable of pairs) to a sorted tuple of (str, str) pairs."""
    if value is None:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    result: dict[str, str] = {}
    for item in items:
        try:
            name, val = item
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a mapping of str to str, got item {item!r}") from None
        if not isinstance(name, str) or not isinstance(val, str):
            raise ValueError(f"{what} must map str to str, got {name!r}: {val!r}")
        if not name:
            raise ValueError(f"{what} has an empty name")
        result[name] = val
    return tuple(sorted(result.items()))


@dataclass(frozen=True)
class ServerTarget:
    """One MCP server to keep a live session with.

    `key` is the identity, and the name used in every error, log line and event (the registry passes the
    server's name). `env` and
    `headers` accept any mapping and are stored as sorted tuples of pairs; use `env_dict` / `headers_dict`
    to read them back.
    """

    key: str
    transport: TransportKind
    command: str = ""
    args: tuple[str, ...] = ()
    # Any mapping is accepted; __post_init__ stores it as a sorted tuple of pairs (hashable, comparable).
    env: Mapping[str, str] | Pairs = field(default=())
    cwd: str | None = None
    url: str = ""
    headers: Mapping[str, str] | Pairs = field(default=())
    request_timeout: float = 10.0
    connect_timeout: float = 20.0
    # Enough that callers of an ordinary server are not queued behind each other (8 cost 16-18 % of the throughput
    # of an 8 ms server at 50 callers); a limit all the same, so one busy caller cannot flood a server.
    max_concurrency: int = 32
    # "auto" probes server/discover (2026-07-28) and falls back to the initialize handshake; "legacy" skips
    # the probe, which saves a round trip (and the probe's timeout) on servers known to be handshake-only.
    mode: ConnectMode = "auto"
    # How much of the server's tool, resource, template and prompt lists a discovery keeps.
    capability_limits: CapabilityLimits = field(default_factory=CapabilityLimits)
    # What the server may send: the size of one message and of a result's content, the rate of its notifications.
    inbound_limits: Limits = field(default_factory=Limits)
    # The MCP authorization flow (http/sse only): which grant and client registration, and where the grant lives.
    oauth: OAuthSettings | None = None

    def __post_init__(self) -> None:
        # Normalise first (frozen dataclass: object.__setattr__), then validate the normalised values.
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "env", _pairs(self.env, "env"))
        object.__setattr__(self, "headers", _pairs(self.headers, "headers"))
        if not isinstance(self.key, str) or not self.key.strip():
            raise ValueError("ServerTarget.key must be a non-empty string")
        if self.transport not in TRANSPORTS:
            raise ValueError(
                f"server {self.key!r}: transport must be one of {', '.join(TRANSPORTS)}, got {self.transport!r}"
            )
        if not all(isinstance(a, str) for a in self.args):
            raise ValueError(f"server {self.key!r}: args must be strings")
        if self.transport == "stdio":
            if not self.command.strip():
                raise ValueError(f"server {self.key!r}: a stdio server needs a command")
            if self.url:
                raise ValueError(f"server {self.key!r}: a stdio server takes a command, not a url")
            if self.headers:
                raise ValueError(f"server {self.key!r}: headers only apply to http/sse servers")
            if self.oauth is not None:
                raise ValueError(f"server {self.key!r}: oauth only applies to http/sse servers")
        else:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    f"server {self.key!r}: a {self.transport} server needs an http(s):// url, got {self.url!r}"
                )
            if self.command or self.args or self.env or self.cwd:
                raise ValueError(
                    f"server {self.key!r}: command/args/env/cwd only apply to stdio servers, not {self.transport}"
                )
        for name in ("request_timeout", "connect_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"server {self.key!r}: {name} must be a positive number of seconds, got {value!r}")
        if not isinstance(self.max_concurrency, int) or isinstance(self.max_concurrency, bool):
            raise ValueError(f"server {self.key!r}: max_concurrency must be an integer")
        if self.max_concurrency < 1:
            raise ValueError(f"server {self.key!r}: max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.mode not in ("auto", "legacy"):
            raise ValueError(f"server {self.key!r}: mode must be 'auto' or 'legacy', got {self.mode!r}")

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)  # type: ignore[arg-type]  # always Pairs after __post_init__

    @property
    def headers_dict(self) -> dict[str, str]:
        return dict(self.headers)  # type: ignore[arg-type]  # always Pairs after __post_init__

    def stdio_environment(self) -> dict[str, str]:
        """The env handed to the SDK for a stdio child (the SDK adds its own safe defaults underneath)."""
        inherited = {name: os.environ[name] for name in EXTRA_INHERITED_ENV if name in os.environ}
        return inherited | self.env_dict

    def redactor(self) -> Redactor:
        """Scrubs this target's secrets (header and env values) out of any text about it."""
        oauth_secrets = self.oauth.secret_values if self.oauth is not None else []
        return Redactor([value for _, value in (*self.headers, *self.env)] + oauth_secrets)  # type: ignore[misc]

    def describe(self) -> str:
        """A short human-readable endpoint description (no header values: they may hold credentials)."""
        if self.transport == "stdio":
            return " ".join([self.command, *self.args])
        return f"{self.transport} {self.url}"
