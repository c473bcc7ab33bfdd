"""How the fleet's tools, prompts and resources are named on `/mcp/`, where every server's lists are merged.

- Tools and prompts: `<server>__<name>` (two underscores). Server names are slugs (letters, digits, - and _), so the
  name splits at the FIRST `__`: `exchange-alpha__get_quote` is `get_quote` on `exchange-alpha`, and a tool whose own
  name contains `__` (`a__b`) keeps it (`srv__a__b`). A server whose own name contains `__` could not be told apart
  (`a__b__c`: server `a`, or server `a__b`?), so it is left out of `/mcp/` (it is still reachable at
  `/mcp/servers/<name>/`); `addressable()` says so in a log line, once per name and process.
- Resources: `mcp-orchestrator://<server>/<the server's own URI, verbatim>`, e.g.
  `mcp-orchestrator://exchange-alpha/quotes://BTC-USD`. The original URI is kept as it is rather than percent-encoded,
  and that is what makes resource templates work: the aggregate lists the template
  `mcp-orchestrator://files/file:///logs/{name}`, a client expands `{name}` exactly as it would expand the server's
  own `file:///logs/{name}` (same operators, same encoding of the value), and the part after `<server>/` is then
  exactly the URI the server would have been asked for. A percent-encoded original would have been decoded once more
  on the way back, which changes any expanded value that contains a reserved character (`a/b` sent as `a%2Fb`).
  Reversing is string work (the server is everything up to the first `/` after the scheme), so no URI parser's
  normalisation is involved; the server part is a slug, and the result is a valid URI (`:` and `//` are allowed in a
  path).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

logger = logging.getLogger(__name__)

SEPARATOR = "__"
URI_SCHEME = "mcp-orchestrator"
_URI_PREFIX = f"{URI_SCHEME}://"
_SLUG = re.compile(r"^[A-Za-z0-9_-]+$")

_unaddressable_logged: set[str] = set()
_log_lock = threading.Lock()


@dataclass(frozen=True)
class ScopedName:
    server: str
    name: str


def addressable(server: str) -> bool:
    """Whether the server's tools and prompts can be named on `/mcp/` (a slug without `__`). Logs, once per name
    and process, why a server is left out."""
    if _SLUG.match(server) and SEPARATOR not in server:
        return True
    with _log_lock:
        first_time = server not in _unaddressable_logged
        _unaddressable_logged.add(server)
    if first_time:
        logger.warning(
            "MCP endpoint: server %r is left out of /mcp/: its name contains %r, which separates server and tool "
            "names there (it is still served at /mcp/servers/%s/)",
            server,
            SEPARATOR,
            server,
        )
    return False


def scoped_name(server: str, name: str) -> str:
    """`<server>__<name>`, for a tool or a prompt."""
    return f"{server}{SEPARATOR}{name}"


def split_scoped_name(scoped: str) -> ScopedName | None:
    """The server and the name inside it, or None when `scoped` is not of the form `<server>__<name>`."""
    server, separator, name = scoped.partition(SEPARATOR)
    if not separator or not server or not name or not _SLUG.match(server):
        return None
    return ScopedName(server=server, name=name)


def scoped_uri(server: str, uri: str) -> str:
    """The aggregate's URI for one of a server's resources (or resource templates)."""
    return f"{_URI_PREFIX}{server}/{uri}"


def split_scoped_uri(scoped: str) -> ScopedName | None:
    """The server and its own URI, or None when `scoped` is not an aggregate resource URI."""
    if not scoped.startswith(_URI_PREFIX):
        return None
    server, slash, uri = scoped[len(_URI_PREFIX) :].partition("/")
    if not slash or not uri or not _SLUG.match(server):
        return None
    return ScopedName(server=server, name=uri)
