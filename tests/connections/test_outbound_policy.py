"""The outbound address policy (SSRF guard): unit tests per address range, and the connect-time guard against real
servers on 127.0.0.1.

Rule for this file: no test sends traffic outside 127.0.0.0/8 and ::1. Refused addresses are refused before any
connection by construction; the tests that feed the guard non-loopback answers (a simulated resolver) also put a
tripwire under it that fails the test instead of connecting anywhere but loopback.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpcore2
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from exchange_fleet.launcher import free_port, start_http_exchange, stop_process
from mcp_client.failures import diagnose_connect_failure, leaves
from mcp_client.outbound import (
    DEFAULT_ALLOWED_NETWORKS,
    OutboundConnectRefused,
    OutboundPolicy,
    OutboundRefused,
    OutboundTransport,
    address_kind,
)

from .helpers import HttpServer, python_http_server

DEFAULT = OutboundPolicy.parse(DEFAULT_ALLOWED_NETWORKS)
ONLY_IPV6_LOOPBACK = OutboundPolicy.parse(["::1/128"])
POLICY_TEXT = "the outbound address policy (setting OUTBOUND_ALLOWED_NETWORKS = 127.0.0.0/8, ::1/128)"


# -- judging addresses -------------------------------------------------------------------------------------------


def test_the_default_policy_and_the_message() -> None:
    assert OutboundPolicy.parse(DEFAULT_ALLOWED_NETWORKS) == OutboundPolicy() == OutboundPolicy.default()
    assert DEFAULT.entries == ("127.0.0.0/8", "::1/128")
    with pytest.raises(OutboundRefused) as refused:
        DEFAULT.check_address("169.254.169.254")
    assert str(refused.value) == (
        "169.254.169.254 is a link-local address; the outbound address policy "
        "(setting OUTBOUND_ALLOWED_NETWORKS = 127.0.0.0/8, ::1/128) does not allow it"
    )
    assert (refused.value.address, refused.value.kind) == ("169.254.169.254", "link-local")


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "this-network"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("224.0.0.1", "multicast"),
        ("224.0.1.1", "multicast"),  # ipaddress calls this one global on 3.11: still refused, still multicast
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("8.8.8.8", "public"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fd00::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("64:ff9b::a9fe:a9fe", "NAT64"),
        ("2606:4700:4700::1111", "public"),
    ],
)
def test_the_default_policy_refuses_every_range_but_loopback(address: str, kind: str) -> None:
    assert address_kind(address) == kind
    assert not DEFAULT.allows(address)
    with pytest.raises(OutboundRefused) as refused:
        DEFAULT.check_address(address)
    message = str(refused.value)
    article = "an" if kind[0] in "aeiou" and kind != "unique-local" else "a"
    assert message == f"{address} is {article} {kind} address; {POLICY_TEXT} does not allow it"


def test_ipv4_mapped_addresses_are_judged_as_ipv4() -> None:
    with pytest.raises(OutboundRefused) as refused:
        DEFAULT.check_address("::ffff:10.0.0.1")
    assert str(refused.value).startswith("::ffff:10.0.0.1 (IPv4-mapped 10.0.0.1) is a private address; ")
    assert DEFAULT.allows("::ffff:127.0.0.1")
    assert not DEFAULT.allows("::ffff:169.254.169.254")
    assert OutboundPolicy.parse(["10.0.0.0/8"]).allows("::ffff:10.9.8.7")
    assert OutboundPolicy.parse([" public "]).allows("::ffff:8.8.8.8")
    assert not OutboundPolicy.parse(["public"]).allows("::ffff:192.168.0.1")
    assert not OutboundPolicy.parse(["::/0"]).allows("::ffff:10.0.0.1")  # an IPv6 entry never lets IPv4 through


@pytest.mark.parametrize("address", ["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1"])
def test_the_default_policy_allows_loopback(address: str) -> None:
    DEFAULT.check_address(address)
    DEFAULT.check_address(ipaddress.ip_address(address))


def test_ipv6_loopback_is_refused_when_only_127_is_listed() -> None:
    policy = OutboundPolicy.parse(["127.0.0.0/8"])
    policy.check_address("127.0.0.1")
    with pytest.raises(OutboundRefused) as refused:
        policy.check_address("::1")
    assert str(refused.value) == (
        "::1 is a loopback address; the outbound address policy (setting OUTBOUND_ALLOWED_NETWORKS = 127.0.0.0/8) "
        "does not allow it"
    )


def test_public_allows_globally_routable_addresses_only() -> None:
    policy = OutboundPolicy.parse(["public"])
    assert policy.entries == ("public",)
    for address in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"):
        policy.check_address(address)
    for address in (
        "127.0.0.1",
        "::1",
        "10.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.1.1",
        "ff0e::1",
        "fec0::1",
        "fd00::1",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "2001:db8::1",
        "192.0.2.1",
        "::a00:1",
    ):
        with pytest.raises(OutboundRefused, match="setting OUTBOUND_ALLOWED_NETWORKS = public"):
            policy.check_address(address)
    with pytest.raises(OutboundRefused, match=r"^8\.8\.8\.8 is a public address; "):
        DEFAULT.check_address("8.8.8.8")


def test_listed_networks_and_single_addresses() -> None:
    policy = OutboundPolicy.parse("10.0.0.0/8, 192.168.1.5, fd12:3456::/32, ::1", setting_name="WEBHOOK_NETWORKS")
    assert policy.entries == ("10.0.0.0/8", "192.168.1.5/32", "fd12:3456::/32", "::1/128")
    for address in ("10.200.0.1", "192.168.1.5", "fd12:3456::9", "::1"):
        policy.check_address(address)
    for address in ("11.0.0.1", "192.168.1.6", "fd12:3457::1", "127.0.0.1"):
        with pytest.raises(OutboundRefused, match="setting WEBHOOK_NETWORKS = 10.0.0.0/8, 192.168.1.5/32"):
            policy.check_address(address)


def test_an_empty_policy_allows_nothing() -> None:
    policy = OutboundPolicy.parse(["", "  "])
    assert policy.entries == ()
    with pytest.raises(OutboundRefused, match=r"\(setting OUTBOUND_ALLOWED_NETWORKS is empty\) does not allow it"):
        policy.check_address("127.0.0.1")


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("nonsense", "is not a network, an address or 'public'"),
        ("10.0.0.1/8", "has host bits set; did you mean 10.0.0.0/8?"),
        ("300.1.1.1", "is not a network"),
        ("10.0.0.0/33", "is not a network"),
        ("localhost", "is not a network"),
        ("::ffff:10.0.0.0/104", "mapped addresses are judged as IPv4, write 10.0.0.0/8 instead"),
        ("public-ish", "is not a network"),
    ],
)
def test_bad_entries_name_the_entry_and_the_setting(entry: str, reason: str) -> None:
    with pytest.raises(ValueError) as error:
        OutboundPolicy.parse(["127.0.0.0/8", entry], setting_name="MY_SETTING")
    assert str(error.value).startswith(f"MY_SETTING: {entry!r} ")
    assert reason in str(error.value)
    with pytest.raises(ValueError, match="OUTBOUND_ALLOWED_NETWORKS: 42 is not a network"):
        OutboundPolicy.parse([42])  # type: ignore[list-item]


# -- judging URLs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "start"),
    [
        ("http://169.254.169.254/latest/meta-data/?token=s3cret", "169.254.169.254 is a link-local address"),
        ("https://user:pa55@10.0.0.1:8443/mcp", "10.0.0.1 is a private address"),
        ("http://[fe80::1]:8080/mcp", "fe80::1 is a link-local address"),
        ("http://[fd00::1]/mcp", "fd00::1 is a unique-local address"),
        ("http://[::ffff:10.0.0.1]/mcp", "::ffff:10.0.0.1 (IPv4-mapped 10.0.0.1) is a private address"),
        ("http://0.0.0.0:8000/mcp", "0.0.0.0 is an unspecified address"),
        ("http://[::]:8000/mcp", ":: is an unspecified address"),
        ("https://8.8.8.8/mcp", "8.8.8.8 is a public address"),
    ],
)
def test_check_url_refuses_literal_addresses(url: str, start: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        DEFAULT.check_url(url)
    message = str(refused.value)
    assert message == f"{start}; {POLICY_TEXT} does not allow it"
    for secret in ("s3cret", "pa55", "user", "meta-data", "/mcp"):
        assert secret not in message


def test_check_url_resolves_host_names() -> None:
    # /etc/hosts: localhost is 127.0.0.1 only on this machine (checked by the first assertion).
    assert DEFAULT.check_url("http://localhost:8000/mcp") == ["127.0.0.1"]
    assert DEFAULT.check_url("http://127.0.0.1:8000/mcp") == ["127.0.0.1"]
    assert DEFAULT.check_url("http://[::1]:8000/mcp") == ["::1"]
    with pytest.raises(OutboundRefused) as refused:
        ONLY_IPV6_LOOPBACK.check_url("http://localhost:8000/mcp")
    assert str(refused.value) == (
        "localhost resolves to 127.0.0.1, a loopback address; the outbound address policy "
        "(setting OUTBOUND_ALLOWED_NETWORKS = ::1/128) does not allow it"
    )
    with pytest.raises(OutboundRefused, match=r"^127\.0\.0\.1 is a loopback address"):
        ONLY_IPV6_LOOPBACK.check_url("http://127.0.0.1:8000/mcp")
    # A number the resolver reads as an IPv4 address is judged by what it resolves to (no DNS query: inet_aton).
    with pytest.raises(OutboundRefused, match=r"^2130706433 resolves to 127\.0\.0\.1, a loopback address"):
        ONLY_IPV6_LOOPBACK.check_url("http://2130706433/mcp")


def test_check_url_refuses_names_that_do_not_resolve_and_odd_urls() -> None:
    def nothing(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(OutboundRefused) as refused:
        DEFAULT.check_url("https://mcp.example.invalid/mcp?key=1", resolver=nothing)
    assert str(refused.value) == (
        f"mcp.example.invalid does not resolve to any address, so {POLICY_TEXT} cannot allow it"
    )
    with pytest.raises(OutboundRefused, match="does not resolve to any address"):
        DEFAULT.check_url("http://empty.test/", resolver=lambda host, port: [])
    with pytest.raises(OutboundRefused, match="^the URL has no host"):
        DEFAULT.check_url("http:///mcp")
    # Every address a name resolves to must be allowed, not just one.
    with pytest.raises(OutboundRefused, match=r"^mixed\.test resolves to 10\.0\.0\.1, a private address"):
        DEFAULT.check_url("http://mixed.test/", resolver=lambda host, port: ["127.0.0.1", "10.0.0.1"])
    assert DEFAULT.check_url("http://both.test/", resolver=lambda host, port: ["127.0.0.1", "::1"]) == [
        "127.0.0.1",
        "::1",
    ]


async def test_acheck_url() -> None:
    assert await DEFAULT.acheck_url("http://localhost:9/mcp") == ["127.0.0.1"]
    with pytest.raises(OutboundRefused, match=r"^localhost resolves to 127\.0\.0\.1"):
        await ONLY_IPV6_LOOPBACK.acheck_url("http://localhost:9/mcp")

    async def metadata(host: str, port: int) -> Sequence[str]:
        return ["169.254.169.254"]

    with pytest.raises(OutboundRefused, match=r"^metadata\.test resolves to 169\.254\.169\.254, a link-local"):
        await DEFAULT.acheck_url("http://metadata.test/", resolver=metadata)


# -- the connect-time guard --------------------------------------------------------------------------------------


class Tripwire(httpcore2.AsyncNetworkBackend):
    """The real backend, with a record of every connect and a refusal to touch anything but loopback."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self._real = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's backend interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        if not ipaddress.ip_address(host).is_loopback:
            pytest.fail(f"the guard let a connection to {host} through")
        self.connects.append((host, port))
        return await self._real.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


def guarded_client(
    policy: OutboundPolicy, tripwire: Tripwire, resolver: Any = None, verify: ssl.SSLContext | bool = True
) -> httpx2.AsyncClient:
    """A client whose guard sits on the tripwire (and, if given, a simulated resolver)."""
    backend = policy.network_backend(inner=tripwire, resolver=resolver)
    return httpx2.AsyncClient(transport=policy.transport(network_backend=backend, verify=verify))


class Listener:
    """A bare HTTP/1.1 listener on a loopback address that counts the TCP connections it accepts."""

    def __init__(self, host: str = "127.0.0.1", redirect_to: str | None = None) -> None:
        self.host = host
        self.redirect_to = redirect_to
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.redirect_to:
                head = f"HTTP/1.1 302 Found\r\nLocation: {self.redirect_to}\r\nContent-Length: 0\r\n"
                writer.write(f"{head}Connection: close\r\n\r\n".encode())
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def __aenter__(self) -> Listener:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def test_a_refused_connection_sends_nothing() -> None:
    async with Listener() as listener:
        for url in (listener.url, f"http://localhost:{listener.port}/"):
            async with ONLY_IPV6_LOOPBACK.client() as client:
                with pytest.raises(OutboundConnectRefused) as refused:
                    await client.get(url)
            assert "127.0.0.1" in str(refused.value)
            assert "(setting OUTBOUND_ALLOWED_NETWORKS = ::1/128) does not allow it" in str(refused.value)
            assert isinstance(refused.value, httpx2.ConnectError) and isinstance(refused.value, OutboundRefused)
            assert refused.value.request.url == httpx2.URL(url)
        assert listener.accepted == 0
        async with DEFAULT.client() as client:  # the control: the same request under the default policy
            assert (await client.get(f"http://localhost:{listener.port}/")).text == "ok"
        assert listener.accepted == 1


async def test_ipv6_loopback_at_connect_time() -> None:
    async with Listener("::1") as listener:
        async with OutboundPolicy.parse(["127.0.0.0/8"]).client() as client:
            with pytest.raises(OutboundConnectRefused, match=r"^::1 is a loopback address; .*= 127\.0\.0\.0/8\)"):
                await client.get(listener.url)
        assert listener.accepted == 0
        async with ONLY_IPV6_LOOPBACK.client() as client:
            assert (await client.get(listener.url)).text == "ok"
        assert listener.accepted == 1


async def test_redirects_are_checked_too() -> None:
    async with Listener("127.0.0.2") as target, Listener(redirect_to=None) as origin:
        origin.redirect_to = target.url
        policy = OutboundPolicy.parse(["127.0.0.1/32"])
        async with policy.client(follow_redirects=True) as client:
            with pytest.raises(OutboundConnectRefused, match=r"^127\.0\.0\.2 is a loopback address; .*127\.0\.0\.1/32"):
                await client.get(origin.url)
        assert (origin.accepted, target.accepted) == (1, 0)
        async with DEFAULT.client(follow_redirects=True) as client:
            assert (await client.get(origin.url)).text == "ok"
        assert (origin.accepted, target.accepted) == (2, 1)


async def test_names_are_resolved_by_the_guard_and_rebinding_is_refused() -> None:
    answers = {"rebind.test": [["127.0.0.1"], ["10.0.0.1"]], "mixed.test": [["127.0.0.1", "169.254.169.254"]]}

    async def resolver(host: str, port: int) -> Sequence[str]:
        return answers[host].pop(0)

    tripwire = Tripwire()
    async with Listener() as listener:
        # The definition is validated while the name points at loopback...
        assert await DEFAULT.acheck_url(f"http://rebind.test:{listener.port}/", resolver=resolver) == ["127.0.0.1"]
        async with guarded_client(DEFAULT, tripwire, resolver) as client:
            # ...then the name answers with a private address: the connection is refused before it is made.
            with pytest.raises(OutboundConnectRefused) as refused:
                await client.get(f"http://rebind.test:{listener.port}/")
            assert (
                str(refused.value)
                == f"rebind.test resolves to 10.0.0.1, a private address; {POLICY_TEXT} does not allow it"
            )
            with pytest.raises(OutboundConnectRefused, match=r"^mixed\.test resolves to 169\.254\.169\.254"):
                await client.get(f"http://mixed.test:{listener.port}/")
        assert tripwire.connects == [] and listener.accepted == 0

        # A name the guard resolves is connected to by the address it checked, never by name.
        async with guarded_client(DEFAULT, tripwire) as client:
            assert (await client.get(f"http://localhost:{listener.port}/")).text == "ok"
        assert tripwire.connects == [("127.0.0.1", listener.port)]


async def test_a_name_that_does_not_resolve_at_connect_time_is_a_connect_error() -> None:
    async def nothing(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    tripwire = Tripwire()
    async with guarded_client(DEFAULT, tripwire, nothing) as client:
        with pytest.raises(httpx2.ConnectError, match="could not resolve gone.test") as error:
            await client.get("http://gone.test:9/")
    assert not isinstance(error.value, OutboundRefused)
    assert tripwire.connects == []


def test_the_guard_cannot_be_routed_around() -> None:
    with pytest.raises(TypeError, match="would bypass the policy"):
        DEFAULT.client(transport=httpx2.AsyncHTTPTransport())
    with pytest.raises(TypeError, match="would bypass the policy"):
        DEFAULT.client(proxy="http://127.0.0.1:3128")
    with pytest.raises(TypeError, match="OutboundNetworkBackend"):
        OutboundTransport(DEFAULT, network_backend=httpcore2.AnyIOBackend())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="another policy"):
        DEFAULT.transport(network_backend=ONLY_IPV6_LOOPBACK.network_backend())


# -- real MCP sessions -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exchange_port() -> Iterable[int]:
    port = free_port()
    process = start_http_exchange("alpha", port, quiet=True)
    try:
        yield port
    finally:
        stop_process(process)


async def test_an_mcp_session_through_the_guarded_client(exchange_port: int) -> None:
    tripwire = Tripwire()
    for url in (f"http://localhost:{exchange_port}/mcp", f"http://127.0.0.1:{exchange_port}/mcp"):
        async with (
            guarded_client(DEFAULT, tripwire) as http,
            Client(streamable_http_client(url, http_client=http), read_timeout_seconds=15) as client,
        ):
            result = await client.call_tool("get_quote", {"symbol": "BTC-USD"})
            assert not result.is_error
            assert "BTC-USD" in result.content[0].text  # type: ignore[union-attr]
    assert tripwire.connects and {host for host, _ in tripwire.connects} == {"127.0.0.1"}

    async with (
        DEFAULT.client() as http,
        Client(streamable_http_client(f"http://localhost:{exchange_port}/mcp", http_client=http)) as client,
    ):
        assert not (await client.call_tool("get_quote", {"symbol": "BTC-USD"})).is_error


async def test_an_mcp_session_to_a_refused_address_fails_at_connect(exchange_port: int) -> None:
    for url, start in (
        (f"http://localhost:{exchange_port}/mcp", "localhost resolves to 127.0.0.1, a loopback address"),
        (f"http://127.0.0.1:{exchange_port}/mcp", "127.0.0.1 is a loopback address"),
    ):
        with pytest.raises(OutboundRefused):
            ONLY_IPV6_LOOPBACK.check_url(url)
        # Streamable HTTP sends from a task group: the refusal arrives as the leaf of an ExceptionGroup.
        with pytest.raises(BaseExceptionGroup) as group:
            async with (
                ONLY_IPV6_LOOPBACK.client() as http,
                Client(streamable_http_client(url, http_client=http), read_timeout_seconds=15),
            ):
                pytest.fail("connected despite the policy")
        found = [leaf for leaf in leaves(group.value) if isinstance(leaf, OutboundRefused)]
        assert len(found) == 1 and isinstance(found[0], OutboundConnectRefused)
        expected = (
            f"{start}; the outbound address policy (setting OUTBOUND_ALLOWED_NETWORKS = ::1/128) does not allow it"
        )
        assert str(found[0]) == expected
        assert diagnose_connect_failure(group.value).message == f"refused: {expected}"


async def test_sse_sessions_go_through_the_guard(marker: str, http_servers: list[HttpServer]) -> None:
    server = python_http_server("well_behaved", "sse", marker)
    http_servers.append(server)
    await asyncio.to_thread(server.start)
    async with Client(sse_client(server.url, httpx_client_factory=DEFAULT.client), read_timeout_seconds=15) as client:
        assert (await client.call_tool("echo", {"text": "through the guard"})).content[0].text == "through the guard"  # type: ignore[union-attr]
    # The SSE GET is made while the transport is entered: the refusal comes out as it is, not in a group.
    with pytest.raises(OutboundConnectRefused, match=r"^127\.0\.0\.1 is a loopback address; .*::1/128"):
        async with Client(sse_client(server.url, httpx_client_factory=ONLY_IPV6_LOOPBACK.client)):
            pytest.fail("connected despite the policy")


# -- TLS still verifies the URL's host name ------------------------------------------------------------------------


def _self_signed_for_localhost(directory: Any) -> tuple[str, str]:
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@asynccontextmanager
async def tls_listener(cert: str, key: str, server_names: list[str | None]) -> AsyncIterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)  # type: ignore[assignment,func-returns-value]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntls")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_tls_verifies_the_url_host_name_not_the_address(tmp_path: Any) -> None:
    cert, key = _self_signed_for_localhost(tmp_path)
    trust = ssl.create_default_context(cafile=cert)
    names: list[str | None] = []
    tripwire = Tripwire()
    async with tls_listener(cert, key, names) as port:
        # Connected to 127.0.0.1 (the checked address), verified as localhost (the URL's host, sent as SNI).
        async with guarded_client(DEFAULT, tripwire, verify=trust) as client:
            assert (await client.get(f"https://localhost:{port}/")).text == "tls"
        assert tripwire.connects == [("127.0.0.1", port)] and names == ["localhost"]
        # Verification is on: the certificate does not name 127.0.0.1.
        async with DEFAULT.client(verify=trust) as client:
            with pytest.raises(httpx2.ConnectError, match="certificate verify failed"):
                await client.get(f"https://127.0.0.1:{port}/")


def test_localhost_resolves_to_ipv4_loopback_here() -> None:
    # The tests above assume this (the brief's /etc/hosts); if it changes they need another name.
    found = {info[4][0] for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)}
    assert found == {"127.0.0.1"}, found
