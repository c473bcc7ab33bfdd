"""The outbound address policy: which networks the orchestrator may open connections to (a guard against SSRF).

Operators register servers by URL; without a policy a URL could point the orchestrator at a cloud metadata service
(169.254.169.254), the private network or anything on the internet. A setting (`OUTBOUND_ALLOWED_NETWORKS`) lists
what may be reached: CIDR networks, single addresses, or the keyword `public` (every globally routable address).
Everything not listed is refused, whatever kind of address it is.

Two checks, one rule:

- `OutboundPolicy.check_url` when a definition arrives: a literal address is judged as it is, a host name is
  resolved and every address it resolves to must be allowed; a name that does not resolve is refused.
- At connect time, in every HTTP connection the orchestrator opens (`OutboundPolicy.transport()` / `.client()`):
  the network backend under httpcore2's connection pool resolves the host itself, judges every address, and
  connects only to an address it has judged, so a name that changed its answer since validation (DNS rebinding)
  or that resolves into a refused range is refused before any packet is sent. Redirects are new requests through
  the same pool, so they pass the same check. TLS still verifies the URL's host name (SNI and certificate):
  httpcore2 starts TLS with the origin's host name, not with the address we connected to.

An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is judged as its IPv4 address. No Django here: the setting's value is
handed in by the caller (see `registry.validation.outbound_policy`).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import anyio
import httpcore2
import httpx2

SETTING_NAME: Final = "OUTBOUND_ALLOWED_NETWORKS"
DEFAULT_ALLOWED_NETWORKS: Final = ("127.0.0.0/8", "::1/128")
PUBLIC: Final = "public"

# What the SDK's default client uses (mcp.shared._httpx_utils): connect/write/pool, and the long read of streams.
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_READ_TIMEOUT: Final = 300.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses (literal strings) the host resolves to, in the order to try them.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
SyncResolver = Callable[[str, int], Sequence[str]]

_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

# What an address is, for the message (the first match wins; more specific networks first). The policy itself never
# looks at this table except for `public`, which means "classified public" below.
_KINDS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), kind)
    for network, kind in (
        ("0.0.0.0/32", "unspecified"),
        ("0.0.0.0/8", "this-network"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("192.0.0.0/24", "special-purpose"),
        ("192.0.2.0/24", "documentation"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("198.18.0.0/15", "benchmarking"),
        ("192.88.99.0/24", "special-purpose"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        # NAT64 reaches IPv4 through a translator; 6to4 and Teredo (in 2001::/23) tunnel to an embedded IPv4 address.
        ("64:ff9b::/96", "NAT64"),
        ("64:ff9b:1::/48", "NAT64"),
        ("100::/64", "discard-only"),
        ("2001:db8::/32", "documentation"),
        ("2001::/23", "special-purpose"),
        ("2002::/16", "6to4"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" and not kind.startswith("uni") else "a"


def parse_address(value: str | IPAddress) -> IPAddress:
    """An address from a literal (an IPv6 zone, `fe80::1%eth0`, is dropped: it does not change what it is)."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        address: IPAddress = value
    else:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(int(address))
    return address


def judged_address(value: str | IPAddress) -> IPAddress:
    """The address the policy judges: an IPv4-mapped IPv6 address (::ffff:10.0.0.1) is its IPv4 address."""
    address = parse_address(value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_kind(value: str | IPAddress) -> str:
    """What kind of address this is: loopback, private, link-local, unspecified, multicast, reserved, unique-local,
    public, ... (an IPv4-mapped address is its IPv4 address)."""
    address = judged_address(value)
    for network, kind in _KINDS:
        if address.version == network.version and address in network:
            return kind
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:  # IPv6 outside 2000::/3 and the ranges above, among others
        return "reserved"
    if address.is_private:
        return "private"
    return "public" if address.is_global else "special-purpose"


def _described(value: str | IPAddress) -> str:
    address = parse_address(value)
    judged = judged_address(address)
    return f"::ffff:{judged} (IPv4-mapped {judged})" if judged != address else str(address)


class OutboundRefused(ValueError):
    """The outbound address policy does not allow this destination. The message is meant for the operator: it names
    only the host or address and the policy (setting name and value), never the URL's path, query or credentials."""

    def __init__(
        self, message: str, *, host: str = "", address: str | None = None, kind: str | None = None, policy: str = ""
    ) -> None:
        super().__init__(message)
        self._set_details(host=host, address=address, kind=kind, policy=policy)

    def _set_details(self, *, host: str, address: str | None, kind: str | None, policy: str) -> None:
        self.host = host
        self.address = address
        self.kind = kind
        self.policy = policy


class OutboundConnectRefused(OutboundRefused, httpx2.ConnectError):
    """Raised by the connect-time guard: an `OutboundRefused` that is also an `httpx2.ConnectError`, so HTTP code
    treats it as a connection that could not be made, and policy-aware code recognises it as a refusal."""

    def __init__(self, refused: OutboundRefused | str) -> None:
        # A plain message too: copying or unpickling an exception calls the class with its args.
        if isinstance(refused, str):
            refused = OutboundRefused(refused)
        httpx2.ConnectError.__init__(self, str(refused))
        self._set_details(host=refused.host, address=refused.address, kind=refused.kind, policy=refused.policy)


def _is_literal(host: str) -> bool:
    try:
        parse_address(host)
    except ValueError:
        return False
    return True


def _unique(addresses: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(addresses))


def resolve_sync(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to for a TCP connection (socket.getaddrinfo), without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _unique(str(info[4][0]) for info in infos)


async def resolve_async(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to for a TCP connection (anyio.getaddrinfo, off the event loop)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _unique(str(info[4][0]) for info in infos)


@dataclass(frozen=True)
class _Target:
    host: str  # as the connection sees it (IDNA-encoded, no brackets)
    shown: str  # as a person wrote it
    port: int


@dataclass(frozen=True)
class OutboundPolicy:
    """The networks outbound connections may reach. Build it with `parse` from the setting's entries."""

    networks: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(entry) for entry in DEFAULT_ALLOWED_NETWORKS)
    allow_public: bool = False
    setting_name: str = SETTING_NAME

    @classmethod
    def parse(cls, entries: Iterable[str], setting_name: str = SETTING_NAME) -> OutboundPolicy:
        """From CIDR networks ("10.0.0.0/8"), single addresses ("10.1.2.3", "::1") and the keyword `public`.

        A single string is split on commas. Blank entries are ignored. A bad entry raises ValueError naming the entry
        and the setting. An empty list is a valid policy that allows nothing.
        """
        if isinstance(entries, str):
            entries = entries.split(",")
        networks: list[IPNetwork] = []
        allow_public = False
        for raw in entries:
            if not isinstance(raw, str):
                raise ValueError(f"{setting_name}: {raw!r} is not a network, an address or {PUBLIC!r} (not a string)")
            entry = raw.strip()
            if not entry:
                continue
            if entry.lower() == PUBLIC:
                allow_public = True
                continue
            networks.append(_parse_network(entry, setting_name))
        return cls(networks=tuple(dict.fromkeys(networks)), allow_public=allow_public, setting_name=setting_name)

    @classmethod
    def default(cls) -> OutboundPolicy:
        return cls.parse(DEFAULT_ALLOWED_NETWORKS)

    @property
    def entries(self) -> tuple[str, ...]:
        """The policy as setting entries (normalised)."""
        return tuple(str(network) for network in self.networks) + ((PUBLIC,) if self.allow_public else ())

    def describe(self) -> str:
        """'setting OUTBOUND_ALLOWED_NETWORKS = 127.0.0.0/8, ::1/128', for messages."""
        if not self.entries:
            return f"setting {self.setting_name} is empty"
        return f"setting {self.setting_name} = {', '.join(self.entries)}"

    # -- judging addresses -------------------------------------------------------------------------------------

    def allows(self, address: str | IPAddress) -> bool:
        """Whether the policy allows this address literal (ValueError if it is not one)."""
        judged = judged_address(address)
        if any(judged.version == network.version and judged in network for network in self.networks):
            return True
        return self.allow_public and address_kind(judged) == "public"

    def check_address(self, address: str | IPAddress, *, host: str | None = None) -> None:
        """Raise OutboundRefused unless the policy allows the address. `host`: the name it was resolved from."""
        if self.allows(address):
            return
        kind = address_kind(address)
        subject = _described(address)
        if host is not None and host != str(parse_address(address)):
            text = f"{host} resolves to {subject}, {_article(kind)} {kind} address"
        else:
            text = f"{subject} is {_article(kind)} {kind} address"
        raise OutboundRefused(
            f"{text}; the outbound address policy ({self.describe()}) does not allow it",
            host=host or str(address),
            address=str(address),
            kind=kind,
            policy=self.describe(),
        )

    def check_addresses(self, host: str, addresses: Sequence[str]) -> list[str]:
        """Every address `host` resolved to must be allowed; returns them (in order). Refused if there are none."""
        if not addresses:
            raise self._unresolved(host)
        for address in addresses:
            self.check_address(address, host=host)
        return list(addresses)

    def _unresolved(self, host: str) -> OutboundRefused:
        return OutboundRefused(
            f"{host} does not resolve to any address, so the outbound address policy ({self.describe()}) "
            "cannot allow it",
            host=host,
            policy=self.describe(),
        )

    # -- judging URLs (when a definition arrives) ----------------------------------------------------------------

    def _target(self, url: str | httpx2.URL) -> _Target:
        try:
            parsed = url if isinstance(url, httpx2.URL) else httpx2.URL(url)
        except (httpx2.InvalidURL, TypeError, ValueError):
            raise OutboundRefused(
                f"the URL is not valid, so the outbound address policy ({self.describe()}) cannot check it",
                policy=self.describe(),
            ) from None
        if not parsed.raw_host:
            raise OutboundRefused(
                f"the URL has no host, so the outbound address policy ({self.describe()}) cannot check it",
                policy=self.describe(),
            )
        port = parsed.port or (443 if parsed.scheme in ("https", "wss") else 80)
        return _Target(host=parsed.raw_host.decode("ascii"), shown=parsed.host, port=port)

    def check_url(self, url: str | httpx2.URL, *, resolver: SyncResolver | None = None) -> list[str]:
        """Raise OutboundRefused unless the URL's host is allowed; returns the addresses it was judged by.

        A literal address is judged directly; a host name is resolved (blocking, socket.getaddrinfo) and every
        address must be allowed. Passing here does not make a later connection safe (DNS can change): the
        connect-time guard of `transport()` / `client()` judges again. `resolver`: instead of getaddrinfo
        (it raises OSError when the name does not resolve).
        """
        target = self._target(url)
        if _is_literal(target.host):
            self.check_address(target.host)
            return [target.host]
        try:
            addresses = list((resolver or resolve_sync)(target.host, target.port))
        except (OSError, UnicodeError):
            raise self._unresolved(target.shown) from None
        return self.check_addresses(target.shown, addresses)

    async def acheck_url(self, url: str | httpx2.URL, *, resolver: Resolver | None = None) -> list[str]:
        """`check_url` for async code: resolution does not block the event loop."""
        target = self._target(url)
        if _is_literal(target.host):
            self.check_address(target.host)
            return [target.host]
        try:
            addresses = await (resolver or resolve_async)(target.host, target.port)
        except (OSError, UnicodeError):
            raise self._unresolved(target.shown) from None
        return self.check_addresses(target.shown, list(addresses))

    # -- the connect-time guard ----------------------------------------------------------------------------------

    def network_backend(
        self, *, inner: httpcore2.AsyncNetworkBackend | None = None, resolver: Resolver | None = None
    ) -> OutboundNetworkBackend:
        return OutboundNetworkBackend(self, inner=inner, resolver=resolver)

    def transport(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx2.Limits | None = None,
        local_address: str | None = None,
        retries: int = 0,
        network_backend: OutboundNetworkBackend | None = None,
    ) -> OutboundTransport:
        """An httpx2 transport whose every TCP connection passes this policy (see `OutboundTransport`).

        `network_backend`: an `OutboundNetworkBackend` of this policy with its own resolver or inner backend (tests).
        """
        return OutboundTransport(
            self,
            verify=verify,
            trust_env=trust_env,
            http1=http1,
            http2=http2,
            limits=limits,
            local_address=local_address,
            retries=retries,
            network_backend=network_backend,
        )

    def client(
        self,
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
        **options: Any,
    ) -> httpx2.AsyncClient:
        """An `httpx2.AsyncClient` whose every connection passes this policy.

        The first three parameters match the SDK's `McpHttpClientFactory`, so the bound method can be handed to
        `sse_client(httpx_client_factory=policy.client)`; `timeout=None` means the SDK's defaults (30 s, 300 s read),
        as in `create_mcp_http_client`. Other keyword arguments go to `AsyncClient`, except those that would route
        around the guard (`transport`, `mounts`, `proxy`).
        """
        bypass = {"transport", "mounts", "proxy", "proxies", "app", "uds"} & options.keys()
        if bypass:
            raise TypeError(
                f"OutboundPolicy.client() does not take {', '.join(sorted(bypass))}: it would bypass the policy"
            )
        transport_options = {key: options.pop(key) for key in ("verify", "http1", "http2", "limits") if key in options}
        return httpx2.AsyncClient(
            headers=headers,
            timeout=timeout if timeout is not None else httpx2.Timeout(DEFAULT_TIMEOUT, read=DEFAULT_READ_TIMEOUT),
            auth=auth,
            transport=self.transport(**transport_options),
            **options,
        )


def _parse_network(entry: str, setting_name: str) -> IPNetwork:
    try:
        network = ipaddress.ip_network(entry, strict=True)
    except ValueError as error:
        reason = str(error)
        try:
            loose = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            pass
        else:
            reason = f"it has host bits set; did you mean {loose}?"
        raise ValueError(f"{setting_name}: {entry!r} is not a network, an address or {PUBLIC!r} ({reason})") from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        mapped = ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
        raise ValueError(
            f"{setting_name}: {entry!r} is an IPv4-mapped IPv6 network; mapped addresses are judged as IPv4, "
            f"write {mapped} instead"
        )
    return network


class OutboundNetworkBackend(httpcore2.AsyncNetworkBackend):
    """An httpcore2 network backend that judges every address before it connects.

    httpcore2 calls `connect_tcp(host, port, ...)` once per new connection (first request, keep-alive expired,
    redirect to another origin...). Here the host is resolved (within the connect timeout), every address is
    judged, and the inner backend is handed only address literals that passed, tried in resolver order: the inner
    backend never resolves a name, so nothing can answer differently between the check and the connect.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        inner: httpcore2.AsyncNetworkBackend | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.policy = policy
        self._inner = inner if inner is not None else httpcore2.AnyIOBackend()
        self._resolve = resolver or resolve_async

    async def _addresses(self, host: str, port: int, deadline: float | None) -> list[str]:
        if _is_literal(host):
            self.policy.check_address(host)
            return [host]
        try:
            with anyio.fail_after(None if deadline is None else max(0.0, deadline - anyio.current_time())):
                addresses = list(await self._resolve(host, port))
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"resolving {host} timed out") from None
        except (OSError, UnicodeError) as error:
            raise httpcore2.ConnectError(f"could not resolve {host}: {error}") from error
        if not addresses:
            raise httpcore2.ConnectError(f"could not resolve {host}: no addresses")
        return self.policy.check_addresses(host, addresses)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's backend interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        deadline = None if timeout is None else anyio.current_time() + timeout
        try:
            addresses = await self._addresses(host, port, deadline)
        except OutboundConnectRefused:
            raise
        except OutboundRefused as refused:
            raise OutboundConnectRefused(refused) from None
        options = list(socket_options) if socket_options is not None else None
        failure: Exception | None = None
        for address in addresses:
            remaining = None if deadline is None else deadline - anyio.current_time()
            if remaining is not None and remaining <= 0:
                raise httpcore2.ConnectTimeout(f"connecting to {host} timed out")
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=remaining, local_address=local_address, socket_options=options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # addresses is never empty
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's backend interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise OutboundConnectRefused(
            OutboundRefused(
                f"a Unix socket is not a network address; the outbound address policy ({self.policy.describe()}) "
                "does not allow it",
                host=path,
                policy=self.policy.describe(),
            )
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class OutboundTransport(httpx2.AsyncHTTPTransport):
    """`httpx2.AsyncHTTPTransport` (no proxy, no Unix socket) whose connection pool connects through
    `OutboundNetworkBackend`: every TCP connection, redirects included, is judged by the policy before it is made.

    Request handling, response streaming, exception mapping and closing are AsyncHTTPTransport's own; only the pool
    is built here, with httpcore2's public `network_backend` parameter. (`AsyncHTTPTransport.__init__` is not called:
    it would build a second SSL context and a pool without the guard. If a future httpx2 stopped using `_pool`, the
    transport would fail every request rather than connect unchecked.)
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx2.Limits | None = None,
        local_address: str | None = None,
        retries: int = 0,
        network_backend: OutboundNetworkBackend | None = None,
    ) -> None:
        if network_backend is not None and not isinstance(network_backend, OutboundNetworkBackend):
            raise TypeError("network_backend must be an OutboundNetworkBackend (anything else would bypass the policy)")
        if network_backend is not None and network_backend.policy != policy:
            raise ValueError("network_backend judges by another policy than this transport's")
        limits = limits or httpx2.Limits(max_connections=100, max_keepalive_connections=20)
        self.policy = policy
        self.network_backend = network_backend if network_backend is not None else OutboundNetworkBackend(policy)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(verify=verify, trust_env=trust_env),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            local_address=local_address,
            retries=retries,
            network_backend=self.network_backend,
        )
