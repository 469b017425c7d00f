"""The SSRF guard of `http.request`: no internal addresses unless the operator allows them.

Definition authors are not trusted with the worker's network position: without this
guard a definition could read the Temporal server's HTTP API on localhost, a cloud
metadata service (169.254.169.254) or anything else on the private network, directly
or through a redirect. So every connection the HTTP client makes goes through
`GuardedBackend`, which resolves the host itself, refuses if any resolved address is
not globally routable (loopback, private, link-local, multicast, unspecified,
reserved, shared, unique-local, …) and then connects to exactly the addresses it
checked. Checking at connect time covers every redirect hop and leaves no window for
DNS rebinding between a check and the connect.

The operator opens holes with an `HttpAllowList` (`TDSL_HTTP_ALLOW`, or
`tdsl worker --http-allow`): comma-separated host names (`api.internal`, or
`*.internal` for its subdomains), `host:port`, IP addresses (`10.0.0.5`,
`[fd00::5]:8443`) and CIDR ranges (`10.0.0.0/8`, `fd00::/8`).

Proxy variables (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) are ignored: through
a proxy the worker would only see the proxy's address, never the target's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import socket
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
from temporalio.exceptions import ApplicationError

from dsl.errors import InputError

__all__ = [
    "ALLOW_ENV_VAR",
    "FORBIDDEN_ADDRESS",
    "MAX_REDIRECTS",
    "ForbiddenAddressError",
    "GuardedBackend",
    "GuardedTransport",
    "HttpAllowList",
    "IPAddress",
    "Resolver",
    "UnsafeUrlError",
    "check_url",
    "forbidden_reason",
    "guarded_client",
    "system_resolver",
]

ALLOW_ENV_VAR = "TDSL_HTTP_ALLOW"
"""The environment variable holding the worker's allow-list."""

FORBIDDEN_ADDRESS = "ForbiddenAddress"
"""The `ApplicationError.type` of a refused connection (non-retryable: it stays refused)."""

MAX_REDIRECTS = 5
"""Redirects followed per request; each hop is checked like the first."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""`(host, port) -> IP addresses`, in the order to try them; injectable for tests."""

# IANA special-purpose ranges that are not globally reachable, most specific first so
# the message names the metadata services. `ipaddress.is_global` alone is not enough:
# it calls multicast and 6to4/NAT64/site-local addresses global, and its tables
# changed between Python patch releases (3.11.10, 3.12.4).
_REFUSED_RANGES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), reason)
    for net, reason in (
        ("169.254.169.254/32", "a cloud metadata address"),  # AWS, GCP, Azure, OCI…
        ("100.100.100.200/32", "a cloud metadata address"),  # Alibaba
        ("192.0.0.192/32", "a cloud metadata address"),  # Oracle (classic)
        ("fd00:ec2::254/128", "a cloud metadata address"),  # AWS over IPv6
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),  # includes 255.255.255.255
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/8", "a reserved address"),  # IPv4-compatible ::a.b.c.d among them
        ("100::/64", "a discard-only address"),
        ("2001::/23", "an IETF protocol address"),  # Teredo among them
        ("2001:db8::/32", "a documentation address"),
        ("fc00::/7", "a unique-local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local (private) address"),
        ("ff00::/8", "a multicast address"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # DNS64 answers: the IPv4 is the last 32 bits


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), else *address*.

    `::ffff:127.0.0.1` and `2002:7f00:1::` reach 127.0.0.1 as surely as 127.0.0.1 does.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return address
    plain = ipaddress.IPv6Address(int(address))  # without a %scope
    if plain.ipv4_mapped is not None:
        return plain.ipv4_mapped
    if plain.sixtofour is not None:
        return plain.sixtofour
    if plain in _NAT64:
        return ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF)
    return plain


def forbidden_reason(address: IPAddress | str) -> str | None:
    """Why `http.request` refuses *address* by default ("a loopback address"), or None.

    Anything not globally routable is refused; IPv6 wrappers of an IPv4 address
    (`::ffff:a.b.c.d`, 6to4, NAT64) are judged by the IPv4 address inside.
    """
    inner = _unwrap(ipaddress.ip_address(address) if isinstance(address, str) else address)
    for network, reason in _REFUSED_RANGES:
        if inner.version == network.version and inner in network:
            return reason
    # Whatever this Python's tables add to ours (they grow with IANA's registry).
    if inner.is_multicast:
        return "a multicast address"
    if inner.is_private or inner.is_reserved or inner.is_link_local or not inner.is_global:
        return "a non-global address"
    return None


def _literal(host: str) -> IPAddress | None:
    """*host* as an IP address when it is one (no DNS for those), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _unwrap_scope(address: IPAddress) -> IPAddress:
    """*address* without an IPv6 `%scope`, which `in network` would trip over."""
    return ipaddress.IPv6Address(int(address)) if address.version == 6 else address


# --------------------------------------------------------------------------- allow-list

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")


@dataclass(frozen=True)
class _Rule:
    """One allow-list entry: a host name (or `*.suffix`) or an IP network, maybe a port."""

    text: str
    name: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def permits(self, host: str, port: int, address: IPAddress) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.name is not None:
            if self.name.startswith("*."):
                return host.endswith(self.name[1:])
            return host == self.name
        assert self.network is not None
        return any(
            candidate.version == self.network.version and candidate in self.network
            for candidate in (_unwrap_scope(address), _unwrap(address))
        )


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{text!r} is not a TCP port")
    return int(text)


def _parse_rule(entry: str) -> _Rule:
    """One entry of the list; a ValueError says what is wrong with it."""
    text = entry.strip().lower()
    if "://" in text:
        raise ValueError("give a host, host:port, IP address or CIDR range, not a URL")
    if "/" in text:  # a CIDR range, any port
        network = ipaddress.ip_network(text, strict=True)  # 10.1.2.3/8 is a typo: say so
        return _Rule(text=str(network), network=network)
    if text.startswith("["):  # [v6] or [v6]:port
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("write an IPv6 address with a port as [address]:port")
        ip6 = ipaddress.IPv6Address(inside)
        port = _port(rest[1:]) if rest else None
        shown = f"[{ip6}]:{port}" if port else str(ip6)
        return _Rule(text=shown, network=ipaddress.ip_network(ip6), port=port)
    if text.count(":") > 1:  # a bare IPv6 address, any port
        ip = ipaddress.IPv6Address(text)
        return _Rule(text=str(ip), network=ipaddress.ip_network(ip))
    host, colon, port_text = text.partition(":")
    port = _port(port_text) if colon else None
    with contextlib.suppress(ValueError):
        ip4 = ipaddress.IPv4Address(host)
        return _Rule(text=text, network=ipaddress.ip_network(ip4), port=port)
    name = host.rstrip(".")
    if not name.isascii():
        raise ValueError("write an international host name in its IDNA form (xn--…)")
    if not _NAME.fullmatch(name):
        raise ValueError("not a host name, host:port, IP address or CIDR range")
    return _Rule(text=text.replace(host, name, 1), name=name, port=port)


@dataclass(frozen=True)
class HttpAllowList:
    """The hosts, ports and ranges `http.request` may reach although they are internal.

    Host names match the URL's host exactly (case-insensitive) whatever it resolves
    to; `*.example.com` matches its subdomains (not `example.com` itself). IP
    addresses and CIDR ranges match the resolved address. An entry with a port
    (`host:8080`, `10.0.0.5:8080`, `[fd00::5]:8080`) matches that port only.
    """

    rules: tuple[_Rule, ...] = ()

    @classmethod
    def parse(
        cls, value: str | Iterable[str] | None, *, source: str = "--http-allow"
    ) -> HttpAllowList:
        """Entries from one comma-separated string or several; InputError names a bad one."""
        texts = [value] if isinstance(value, str) else list(value or ())
        rules: list[_Rule] = []
        for text in texts:
            for entry in text.split(","):
                if not entry.strip():
                    continue
                try:
                    rule = _parse_rule(entry)
                except ValueError as err:
                    raise InputError(f"{source}: bad entry {entry.strip()!r}: {err}") from None
                if rule not in rules:
                    rules.append(rule)
        return cls(tuple(rules))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpAllowList:
        """The list in `TDSL_HTTP_ALLOW` (empty when unset)."""
        env = os.environ if environ is None else environ
        return cls.parse(env.get(ALLOW_ENV_VAR, ""), source=ALLOW_ENV_VAR)

    @classmethod
    def coerce(cls, value: HttpAllowList | str | Sequence[str] | None) -> HttpAllowList:
        """*value* as a list; None means `TDSL_HTTP_ALLOW`, read now."""
        if isinstance(value, HttpAllowList):
            return value
        if value is None:
            return cls.from_env()
        return cls.parse(value, source="http_allow")

    def __or__(self, other: HttpAllowList) -> HttpAllowList:
        return HttpAllowList(self.rules + tuple(r for r in other.rules if r not in self.rules))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __str__(self) -> str:
        return ",".join(rule.text for rule in self.rules)

    def permits(self, host: str, port: int, address: IPAddress) -> bool:
        """Whether connecting to *address* for *host*:*port* is allowed by an entry."""
        name = host.lower().rstrip(".").strip("[]")
        return any(rule.permits(name, port, address) for rule in self.rules)


# --------------------------------------------------------------------------- errors


class ForbiddenAddressError(Exception):
    """A connection the guard refused; `to_application_error()` is what the activity raises."""

    def __init__(self, host: str, port: int, address: IPAddress, reason: str) -> None:
        self.host, self.port, self.address, self.reason = host, port, address, reason
        self.entry = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        what = (
            f"{host} is {reason}"
            if _literal(host) == address
            else f"{host} resolves to {address}, {reason}"
        )
        super().__init__(
            f"refused to connect to {self.entry}: {what}; allow it with "
            f"{ALLOW_ENV_VAR}={self.entry} or `tdsl worker --http-allow {self.entry}`"
        )

    def to_application_error(self, activity_name: str = "http.request") -> ApplicationError:
        """Non-retryable, type `ForbiddenAddress`: asking again gets the same answer."""
        return ApplicationError(
            f"{activity_name}: {self}",
            {"host": self.host, "port": self.port, "address": str(self.address)},
            type=FORBIDDEN_ADDRESS,
            non_retryable=True,
        )


class UnsafeUrlError(ValueError):
    """A URL refused before any I/O: not http(s), or with user info in it."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url
        """The URL refused, without its user info."""


def check_url(url: httpx.URL | str) -> None:
    """Refuse what is not plain `http://` or `https://`, before anything is sent.

    User info (`http://a@b/`) is refused as well: `http://169.254.169.254@example.com/`
    reads like a different host than it is; credentials belong in a header.
    """
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    safe = str(parsed.copy_with(userinfo=b""))
    if parsed.scheme not in ("http", "https"):
        scheme = f"{parsed.scheme}:" if parsed.scheme else "a URL without a scheme"
        raise UnsafeUrlError(f"only http:// and https:// URLs are allowed, not {scheme}", safe)
    if parsed.userinfo:
        raise UnsafeUrlError(
            "user info (user:password@) in a URL is not allowed; "
            "send credentials in an Authorization header",
            safe,
        )


# --------------------------------------------------------------------------- connecting


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (getaddrinfo), in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses it has checked.

    It resolves the host itself, raises `ForbiddenAddressError` if any address is
    refused and not allowed, and otherwise hands the checked IP addresses, in
    order, to httpcore's AnyIO backend. TLS is unaffected: httpcore passes the URL's
    host name to `start_tls` as `server_hostname`, and the Host header is the URL's.
    """

    def __init__(self, allow: HttpAllowList, *, resolver: Resolver | None = None) -> None:
        self.allow = allow
        self._resolve: Resolver = resolver or system_resolver
        self._backend = httpcore.AnyIOBackend()

    async def addresses(
        self, host: str, port: int, timeout: float | None = None
    ) -> list[IPAddress]:
        """The addresses to connect to for *host*:*port*, every one checked."""
        bare = host.strip("[]")
        literal = _literal(bare)
        found = [literal] if literal is not None else await self._lookup(bare, port, timeout)
        for address in found:
            reason = forbidden_reason(address)
            if reason is not None and not self.allow.permits(bare, port, address):
                raise ForbiddenAddressError(bare, port, address, reason)
        return found

    async def _lookup(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        try:
            answers = await asyncio.wait_for(self._resolve(host, port), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        except OSError as err:  # socket.gaierror among them
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {err}") from None
        if not answers:
            raise httpcore.ConnectError(f"{host!r} has no address")
        return [ipaddress.ip_address(answer) for answer in answers]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        addresses = await self.addresses(host, port, timeout)
        failure: Exception | None = None
        for address in addresses:  # like happy eyeballs' fallback, one at a time
            left = None if deadline is None else max(deadline - loop.time(), 0.001)
            try:
                return await self._backend.connect_tcp(
                    str(address), port, left, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                failure = err
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("http.request does not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


# httpcore's exceptions as httpx's, most specific first (what httpx's own transport does).
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _httpx_exceptions() -> Iterator[None]:
    """httpcore errors as httpx errors; anything else (a refusal) passes untouched."""
    try:
        yield
    except Exception as err:
        for core, mapped in _EXCEPTIONS:
            if isinstance(err, core):
                raise mapped(str(err)) from err
        raise


class _ResponseStream(httpx.AsyncByteStream):
    """The body as httpx wants it, with httpcore's read errors as httpx's."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_exceptions():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            with _httpx_exceptions():
                await self._stream.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an httpcore pool that connects through `GuardedBackend`.

    httpx's `AsyncHTTPTransport` takes no network backend, and replacing its private
    `_pool` would silently lose the guard if httpx renamed it; this transport uses
    only public httpx and httpcore API instead.
    """

    def __init__(self, allow: HttpAllowList, *, resolver: Resolver | None = None) -> None:
        self.backend = GuardedBackend(allow, resolver=resolver)
        self._pool = httpcore.AsyncConnectionPool(
            # SSL_CERT_FILE / SSL_CERT_DIR are the operator's settings: honoured as before
            ssl_context=httpx.create_ssl_context(trust_env=True),
            max_connections=100,  # httpx's defaults
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=self.backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.AsyncByteStream):  # pragma: no cover
            raise TypeError("GuardedTransport needs an async request stream")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_exceptions():
            response = await self._pool.handle_async_request(core_request)
        if not isinstance(response.stream, AsyncIterable):  # pragma: no cover
            raise TypeError("httpcore returned a sync response stream")
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


async def _check_hop(request: httpx.Request) -> None:
    check_url(request.url)


def guarded_client(allow: HttpAllowList, *, resolver: Resolver | None = None) -> httpx.AsyncClient:
    """The client of `http.request`: guarded transport, no proxies, few redirects.

    Proxy variables cannot route around the guard: httpx mounts no proxy transport
    beside an explicit one, and `trust_env=False` says so again (and ignores
    .netrc). The request hook checks each hop's URL (scheme, user info) before it
    is sent, the backend its addresses before connecting.
    """
    return httpx.AsyncClient(
        transport=GuardedTransport(allow, resolver=resolver),
        trust_env=False,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        event_hooks={"request": [_check_hop]},
    )
