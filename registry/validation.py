"""Rules a server definition must satisfy. The serializer (`ServerDefinitionSerializer`) is the one path that applies
them, for the API, the import and the admin form alike.

Everything is checked when the definition arrives, so nothing that passed can fail later in a way that hurts
anything but that one server: header and env names and values that the HTTP stack or `exec` would refuse, headers
the transport owns, URLs outside the outbound address policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from mcp_client.outbound import OutboundPolicy, OutboundRefused
from registry.models import Transport

# RFC 9110 field-name: a token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Visible ASCII, space and tab, no leading or trailing whitespace: what every HTTP stack sends unchanged.
_HEADER_VALUE = re.compile(r"^[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

MAX_NAME_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8_192
MAX_ENV_VALUE_LENGTH = 32_768
MAX_SECRET_ENTRIES = 64

# The transport sets these itself; letting a definition set them would break the protocol or, for Host, point the
# request somewhere the outbound address policy never checked.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "accept",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
    }
)
# Set by the connection layer on every stdio child to find it again (see mcp_client/processes.py).
RESERVED_ENV = frozenset({"MCP_ORCHESTRATOR_SESSION"})

# Where a server points. Secrets were given for one endpoint; a change here must not carry them to another.
ENDPOINT_FIELDS: dict[str, tuple[str, ...]] = {
    Transport.STDIO: ("transport", "command", "args", "cwd"),
    Transport.HTTP: ("transport", "url"),
    Transport.SSE: ("transport", "url"),
}


def outbound_policy() -> OutboundPolicy:
    return OutboundPolicy.parse(settings.OUTBOUND_ALLOWED_NETWORKS)


def _shown(name: str) -> str:
    """A name as it may appear in an error: short, printable (a 200 KB name must not come back 25 times)."""
    text = name if len(name) <= 60 else name[:57] + "..."
    return repr(text)


def header_errors(headers: Any) -> str | None:
    if not isinstance(headers, Mapping):
        return "headers must be an object mapping names to string values."
    if len(headers) > MAX_SECRET_ENTRIES:
        return f"At most {MAX_SECRET_ENTRIES} headers."
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            return "headers must map names to string values."
        if not name:
            return "A header name is empty."
        if len(name) > MAX_NAME_LENGTH or not _HEADER_NAME.match(name):
            return f"Header name {_shown(name)} is not a valid HTTP field name (letters, digits and !#$%&'*+-.^_`|~)."
        if name.lower() in RESERVED_HEADERS:
            return f"Header {_shown(name)} is set by the transport itself and cannot be given."
        if len(value) > MAX_HEADER_VALUE_LENGTH:
            return f"The value of header {_shown(name)} is longer than {MAX_HEADER_VALUE_LENGTH} characters."
        if not _HEADER_VALUE.match(value):
            # Never echo the value: headers are secrets.
            return (
                f"The value of header {_shown(name)} must be printable ASCII without control characters "
                "and without leading or trailing spaces."
            )
    return None


def env_errors(env: Any) -> str | None:
    if not isinstance(env, Mapping):
        return "env must be an object mapping names to string values."
    if len(env) > MAX_SECRET_ENTRIES:
        return f"At most {MAX_SECRET_ENTRIES} environment variables."
    for name, value in env.items():
        if not isinstance(name, str) or not isinstance(value, str):
            return "env must map names to string values."
        if not name:
            return "An environment variable name is empty."
        if len(name) > MAX_NAME_LENGTH or not _ENV_NAME.match(name):
            return f"Environment variable name {_shown(name)} must be letters, digits and _, not starting with a digit."
        if name in RESERVED_ENV:
            return f"Environment variable {_shown(name)} is set by the orchestrator itself."
        if len(value) > MAX_ENV_VALUE_LENGTH:
            return f"The value of {_shown(name)} is longer than {MAX_ENV_VALUE_LENGTH} characters."
        if "\x00" in value:
            return f"The value of {_shown(name)} contains a NUL character."
    return None


def _stdio_command_errors(command: str) -> str | None:
    allowed = list(settings.MCP_STDIO_COMMAND_ALLOWLIST)
    if allowed and command not in allowed:
        return "This command is not in the stdio command allow-list (setting MCP_STDIO_COMMAND_ALLOWLIST)."
    if "\x00" in command:
        return "The command contains a NUL character."
    return None


def url_errors(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "The URL must start with http:// or https://."
    if not parts.hostname:
        return "The URL has no host."
    if parts.username or parts.password:
        return "Credentials do not belong in the URL (it is shown to viewers); put them in headers."
    # Checked here, or a port like 99999 passes and every connect fails later with OverflowError.
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = -1
    if port is not None and not 1 <= port <= 65_535:
        return "The URL's port must be a number from 1 to 65535."
    try:
        outbound_policy().check_url(url)
    except OutboundRefused as refused:
        return str(refused)
    return None


def transport_errors(
    *, transport: str, command: str, args: Any, cwd: str, url: str, env: Any, headers: Any
) -> dict[str, str]:
    """Field -> message for every way the transport settings do not fit together. Empty when all is well."""
    errors: dict[str, str] = {}
    if transport == Transport.STDIO:
        if not command.strip():
            errors["command"] = "A stdio server needs the command to run."
        elif problem := _stdio_command_errors(command):
            errors["command"] = problem
        if url:
            errors["url"] = "A stdio server takes no URL; remove it or choose the http or sse transport."
        if headers:
            errors["headers"] = "Headers are sent over HTTP only; a stdio server takes env instead."
    elif transport in (Transport.HTTP, Transport.SSE):
        if not url:
            errors["url"] = f"An {transport} server needs its URL, e.g. http://127.0.0.1:8001/mcp."
        elif problem := url_errors(url):
            errors["url"] = problem
        if command or args or cwd:
            errors["command"] = f"An {transport} server is reached by URL; command, args and cwd must be empty."
        if env:
            errors["env"] = "env is for stdio child processes; an HTTP server takes headers instead."
    else:
        errors["transport"] = f"Unknown transport {transport!r}: choose stdio, http or sse."
    if not isinstance(args, list) or not all(isinstance(item, str) for item in args):
        errors["args"] = "args must be a list of strings."
    elif any("\x00" in item for item in args):
        errors["args"] = "An argument contains a NUL character."
    if "env" not in errors and (problem := env_errors(env)):
        errors["env"] = problem
    if "headers" not in errors and (problem := header_errors(headers)):
        errors["headers"] = problem
    return errors


def secrets_rebinding_errors(*, current: Any, attrs: Mapping[str, Any]) -> dict[str, str]:
    """Secrets stay with the endpoint they were given for.

    When a change points a server that holds env or headers somewhere else (another URL, transport or command),
    the secrets must be given again (or explicitly dropped with an empty object); otherwise the new endpoint would
    receive credentials meant for the old one.
    """
    if current is None:
        return {}
    moved = [
        name
        for name in ENDPOINT_FIELDS.get(current.transport, ("transport",))
        if name in attrs and attrs[name] != getattr(current, name)
    ]
    if not moved:
        return {}
    errors: dict[str, str] = {}
    for field in ("env", "headers"):
        if getattr(current, field) and field not in attrs:
            errors[field] = (
                f"This server's {', '.join(moved)} changed, and its stored {field} were given for the old endpoint: "
                f'give the {field} again for the new one, or send "{field}": {{}} to drop them.'
            )
    return errors


POLL_KEYS = frozenset({"tool", "arguments", "interval_seconds", "stream"})
POLL_STREAM = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_:-]+)*$")


def poll_errors(metadata: Any) -> str | None:
    """`metadata.poll`, when present, configures a polling producer: {"tool", "arguments", "interval_seconds",
    "stream"}. Checked here so a bad one is refused with its field named rather than failing in the pipeline."""
    if not isinstance(metadata, dict) or "poll" not in metadata:
        return None
    poll = metadata["poll"]
    if not isinstance(poll, dict):
        return "poll must be an object: {tool, arguments, interval_seconds, stream}"
    unknown = sorted(set(poll) - POLL_KEYS)
    if unknown:
        return f"poll has unknown keys: {', '.join(_shown(key) for key in unknown[:5])}"
    tool = poll.get("tool")
    if not isinstance(tool, str) or not tool or len(tool) > 200:
        return "poll.tool must be the name of a tool (1-200 characters)"
    if not isinstance(poll.get("arguments", {}), dict):
        return "poll.arguments must be an object"
    interval = poll.get("interval_seconds", 5)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not 0.5 <= interval <= 86_400:
        return "poll.interval_seconds must be a number from 0.5 to 86400"
    stream = poll.get("stream")
    if stream is not None and (not isinstance(stream, str) or len(stream) > 200 or not POLL_STREAM.match(stream)):
        return "poll.stream must be a dotted stream name such as quotes.BTC-USD"
    return None


HEALTH_KEYS = frozenset({"interval_seconds", "retries", "recover_after", "latency_target_ms", "synthetic"})
SYNTHETIC_KEYS = frozenset({"tool", "arguments", "expect", "timeout_seconds"})
EXPECT_OPERATORS = frozenset({"exists", "eq", "ne", "gt", "ge", "lt", "le", "contains"})


def _number_between(value: Any, low: float, high: float) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and low <= value <= high


def health_errors(metadata: Any) -> str | None:
    """`metadata.health`, when present, tunes the health monitor's checks of this server: {interval_seconds,
    retries, recover_after, latency_target_ms, synthetic: {tool, arguments, expect: {path, op, value},
    timeout_seconds}}."""
    if not isinstance(metadata, dict) or "health" not in metadata:
        return None
    health = metadata["health"]
    if not isinstance(health, dict):
        return "health must be an object: {interval_seconds, retries, recover_after, latency_target_ms, synthetic}"
    unknown = sorted(set(health) - HEALTH_KEYS)
    if unknown:
        return f"health has unknown keys: {', '.join(_shown(key) for key in unknown[:5])}"
    limits = {"interval_seconds": (1, 3600), "retries": (0, 20), "recover_after": (1, 20)}
    for key, (low, high) in limits.items():
        if key in health and not _number_between(health[key], low, high):
            return f"health.{key} must be a number from {low} to {high}"
    if "latency_target_ms" in health and not _number_between(health["latency_target_ms"], 1, 600_000):
        return "health.latency_target_ms must be a number from 1 to 600000"
    synthetic = health.get("synthetic")
    if synthetic is None:
        return None
    if not isinstance(synthetic, dict):
        return "health.synthetic must be an object: {tool, arguments, expect, timeout_seconds}"
    unknown = sorted(set(synthetic) - SYNTHETIC_KEYS)
    if unknown:
        return f"health.synthetic has unknown keys: {', '.join(_shown(key) for key in unknown[:5])}"
    tool = synthetic.get("tool")
    if not isinstance(tool, str) or not tool or len(tool) > 200:
        return "health.synthetic.tool must be the name of a tool (1-200 characters)"
    if not isinstance(synthetic.get("arguments", {}), dict):
        return "health.synthetic.arguments must be an object"
    if "timeout_seconds" in synthetic and not _number_between(synthetic["timeout_seconds"], 0.1, 600):
        return "health.synthetic.timeout_seconds must be a number from 0.1 to 600"
    expect = synthetic.get("expect")
    if expect is not None:
        if not isinstance(expect, dict) or not isinstance(expect.get("path", ""), str):
            return "health.synthetic.expect must be an object: {path, op, value}"
        if expect.get("op", "exists") not in EXPECT_OPERATORS:
            return f"health.synthetic.expect.op must be one of {', '.join(sorted(EXPECT_OPERATORS))}"
    return None


OAUTH_KEYS = frozenset(
    {
        "grant",
        "registration",
        "client_id",
        "client_secret",
        "scope",
        "client_metadata_url",
        "token_endpoint_auth_method",
        "issuer",
    }
)
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$")  # RFC 6749 §3.3 scope-tokens


def oauth_errors(oauth: Any, *, transport: str, client_secret_kept: bool) -> dict[str, str]:
    """Field (`oauth.<key>`) -> message for an `oauth` definition that cannot work. `client_secret_kept`: the server
    already holds a client secret that a change without one keeps."""
    from mcp_client.oauth import GRANT_TYPES, REGISTRATIONS, TOKEN_ENDPOINT_AUTH_METHODS

    if oauth in (None, {}):
        return {}
    if not isinstance(oauth, Mapping):
        return {"oauth": "oauth must be an object: {grant, registration, client_id, client_secret, scope, ...}"}
    if transport not in (Transport.HTTP, Transport.SSE):
        return {"oauth": "OAuth is for http and sse servers: a stdio server takes env instead."}
    errors: dict[str, str] = {}
    unknown = sorted(set(oauth) - OAUTH_KEYS)
    if unknown:
        errors["oauth"] = f"oauth has unknown keys: {', '.join(_shown(str(key)) for key in unknown[:5])}"
    for key in OAUTH_KEYS:
        value = oauth.get(key, "")
        if not isinstance(value, str):
            errors[f"oauth.{key}"] = "must be a string"
        elif len(value) > (8_000 if key == "client_secret" else 2_000) or "\x00" in value:
            errors[f"oauth.{key}"] = "too long, or holds a NUL character"
    if errors:
        return errors
    grant = oauth.get("grant") or "authorization_code"
    registration = oauth.get("registration") or ("pre_registered" if oauth.get("client_id") else "dynamic")
    has_secret = bool(oauth.get("client_secret")) or client_secret_kept
    if grant not in GRANT_TYPES:
        errors["oauth.grant"] = f"Choose one of {', '.join(GRANT_TYPES)}."
    if registration not in REGISTRATIONS:
        errors["oauth.registration"] = f"Choose one of {', '.join(REGISTRATIONS)}."
    method = oauth.get("token_endpoint_auth_method") or ""
    if method and method not in TOKEN_ENDPOINT_AUTH_METHODS:
        errors["oauth.token_endpoint_auth_method"] = f"Choose one of {', '.join(TOKEN_ENDPOINT_AUTH_METHODS)}."
    if method == "private_key_jwt":
        from mcp_client.oauth import signing_algorithm

        if grant != "client_credentials":
            errors["oauth.token_endpoint_auth_method"] = "private_key_jwt goes with the client_credentials grant."
        elif oauth.get("client_secret"):
            try:
                signing_algorithm(oauth["client_secret"])
            except ValueError:
                # Never echoed: it is a secret.
                errors["oauth.client_secret"] = "With private_key_jwt the secret is an unencrypted PEM private key."
    if registration == "pre_registered" and not oauth.get("client_id"):
        errors["oauth.client_id"] = "A pre-registered client needs the client_id the authorization server gave it."
    if grant == "client_credentials":
        if registration != "pre_registered":
            errors["oauth.registration"] = "The client_credentials grant needs a pre_registered client."
        if not has_secret:
            errors["oauth.client_secret"] = "The client_credentials grant needs the client's secret."
    if registration != "pre_registered" and oauth.get("client_secret"):
        errors["oauth.client_secret"] = "Only a pre-registered client has a secret given here."
    metadata_url = oauth.get("client_metadata_url") or ""
    if registration == "metadata_document" and not metadata_url:
        errors["oauth.client_metadata_url"] = "A metadata_document registration needs the document's https URL."
    if metadata_url:
        parts = urlsplit(metadata_url)
        if parts.scheme != "https" or not parts.hostname or parts.path in ("", "/"):
            errors["oauth.client_metadata_url"] = "The client ID metadata document URL must be https with a path."
    scope = oauth.get("scope") or ""
    if scope and not _SCOPE.match(scope):
        errors["oauth.scope"] = "Scopes are printable tokens separated by single spaces."
    issuer = oauth.get("issuer") or ""
    # The issuer's metadata is fetched by the orchestrator: it must be reachable under the outbound policy.
    if issuer and (problem := url_errors(issuer)):
        errors["oauth.issuer"] = problem
    return errors


def oauth_rebinding_errors(*, current: Any, attrs: Mapping[str, Any]) -> dict[str, str]:
    """A stored client secret stays with the endpoint it was given for, like env and headers."""
    if current is None or not current.oauth_client_secret or "url" not in attrs or attrs["url"] == current.url:
        return {}
    given = attrs.get("oauth")
    if isinstance(given, Mapping) and (given.get("client_secret") or not given):
        return {}
    if given is None and "oauth" in attrs:
        return {}
    return {
        "oauth.client_secret": "This server's url changed, and its stored OAuth client secret was given for the old "
        'endpoint: give oauth.client_secret again for the new one, or send "oauth": {} to drop OAuth.'
    }
