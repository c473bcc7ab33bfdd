"""Making sense of what went wrong: one line for a person, and whether the error needs one.

The SDK reports failures as a mix of MCPError codes, ExceptionGroups, httpx errors and OS errors, and loses the HTTP
status of a refused request ("Server returned an error response"). The transports record the last HTTP error status
they saw (see `HttpObservations`), so a 401 can be called what it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus

from mcp import MCPError
from mcp.client.auth.exceptions import OAuthFlowError
from mcp_types import CONNECTION_CLOSED

from .oauth import AuthorizationNeeded
from .outbound import OutboundRefused


@dataclass
class HttpObservations:
    """What the HTTP transport saw of one session's requests, for diagnosis (written by the transport)."""

    last_error_status: int | None = None

    def reset(self) -> None:
        self.last_error_status = None


@dataclass(frozen=True)
class Diagnosis:
    message: str
    needs_attention: bool = False  # a person must act (credentials, command, URL): retried slowly


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The innermost exceptions of a (possibly nested) exception group, following causes of wrappers."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def describe_exception(exc: BaseException) -> str:
    """One line for logs and status: leaf exceptions of a group, type names kept (they carry the meaning)."""
    if isinstance(exc, BaseExceptionGroup):
        parts = [describe_exception(inner) for inner in exc.exceptions]
        return "; ".join(dict.fromkeys(parts)) or type(exc).__name__
    if isinstance(exc, MCPError):
        return f"MCPError {exc.code}: {exc.message}"
    if isinstance(exc, OutboundRefused):
        return str(exc)
    if isinstance(exc, AuthorizationNeeded):
        return f"authorization needed: {exc.why}"
    if isinstance(exc, OAuthFlowError):
        return f"authorization failed: {_without_reply_body(str(exc))}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _without_reply_body(text: str) -> str:
    """The SDK's OAuth errors end with the authorization server's reply ("Token exchange failed (401): {...}"): what
    a server sent is not repeated in our words."""
    first = text.strip().splitlines()[0] if text.strip() else "OAuth flow error"
    status = re.search(r"\(\d{3}\)", first)
    return (first[: status.end()] if status else first)[:300]


def has_connection_closed(exc: BaseException) -> bool:
    return any(isinstance(leaf, MCPError) and leaf.code == CONNECTION_CLOSED for leaf in leaves(exc))


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def diagnose_connect_failure(
    exc: BaseException,
    *,
    command: str = "",
    cwd: str | None = None,
    http: HttpObservations | None = None,
    oauth: bool = False,
) -> Diagnosis:
    """Why a connect attempt failed, in words a person can act on. `oauth`: the server is reached through the MCP
    authorization flow, so a refusal is about its grant, not about headers."""
    found = list(leaves(exc))
    for leaf in found:
        cause = leaf.__cause__ or leaf.__context__
        for candidate in (leaf, cause):
            if isinstance(candidate, OutboundRefused):
                return Diagnosis(f"refused: {candidate}", needs_attention=True)
    for leaf in found:
        if isinstance(leaf, AuthorizationNeeded):
            return Diagnosis(f"authorization needed: {leaf.why}", needs_attention=True)
        if isinstance(leaf, OAuthFlowError):
            return Diagnosis(describe_exception(leaf), needs_attention=True)
    for leaf in found:
        directory = _missing_directory(leaf, command, cwd)
        if directory is not None:
            return directory
        if isinstance(leaf, FileNotFoundError):
            return Diagnosis(f"command not found: {command or leaf.filename}", needs_attention=True)
        if isinstance(leaf, PermissionError):
            return Diagnosis(f"command not executable (permission denied): {command or leaf.filename}", True)
    status = http.last_error_status if http is not None else None
    status = status or next((_http_status_of(leaf) for leaf in found if _http_status_of(leaf)), None)
    if status in (401, 403) and oauth:
        # The SDK's flow ended without a token the server accepts and without saying why (an authorization server it
        # could not reach, an answer it could not use): say where to look.
        return Diagnosis(
            f"authorization failed ({_status_text(status)}): no OAuth token the server accepts "
            "(is its authorization server reachable? are the client's settings right?)",
            True,
        )
    if status in (401, 403, 407):
        return Diagnosis(f"authorization failed ({_status_text(status)}): check the server's headers", True)
    if status in (404, 405, 410):
        return Diagnosis(f"no MCP endpoint at this URL ({_status_text(status)})", True)
    if status is not None and status >= 400:
        return Diagnosis(f"the server refused the connection ({_status_text(status)})")
    if has_connection_closed(exc):
        return Diagnosis("the server closed the connection during the handshake (did it exit?)")
    return Diagnosis(describe_exception(exc))


def _missing_directory(leaf: BaseException, command: str, cwd: str | None) -> Diagnosis | None:
    """A stdio server's working directory that could not be entered, if that is what failed.

    Spawning changes into the working directory before it runs the command, and the OS error names whichever
    failed (subprocess reports the directory when the chdir failed, the executable otherwise): an error naming
    something other than the command (or naming the given cwd) is about the directory.
    """
    if not isinstance(leaf, OSError) or leaf.filename is None:
        return None
    filename = str(leaf.filename)
    if cwd is not None and filename != str(cwd):
        return None
    if cwd is None and (not command or filename == command):
        return None
    if isinstance(leaf, FileNotFoundError):
        return Diagnosis(f"working directory not found: {filename}", needs_attention=True)
    if isinstance(leaf, NotADirectoryError):
        return Diagnosis(f"working directory is not a directory: {filename}", needs_attention=True)
    if isinstance(leaf, PermissionError):
        return Diagnosis(f"working directory not accessible (permission denied): {filename}", needs_attention=True)
    return None


def _http_status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None
