"""The SSRF guard of `http.request`: the address classifier, the allow-list, and the
activity itself against real local HTTP servers (no Temporal server needed)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import http_guard
from activities.builtin import BuiltinActivities
from activities.http_guard import (
    FORBIDDEN_ADDRESS,
    MAX_REDIRECTS,
    ForbiddenAddressError,
    GuardedBackend,
    HttpAllowList,
    forbidden_reason,
    guarded_client,
)
from dsl.errors import InputError
from interpreter.cli import main

# --- the address classifier -------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("2002:7f00:1::", "loopback"),  # 6to4
        ("64:ff9b::7f00:1", "loopback"),  # NAT64
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("100.100.100.200", "cloud metadata"),
        ("100.64.0.1", "shared"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fd12:3456::1", "unique-local"),
        ("192.0.0.192", "cloud metadata"),
        ("fec0::1", "site-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("::7f00:1", "reserved"),  # IPv4-compatible
        ("198.18.0.1", "benchmarking"),
        ("2001:db8::1", "documentation"),
    ],
)
def test_internal_addresses_are_refused(address: str, reason: str) -> None:
    found = forbidden_reason(address)
    assert found is not None
    assert reason in found
    assert forbidden_reason(ipaddress.ip_address(address)) == found


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"],
)
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(address) is None


# --- the allow-list ------------------------------------------------------------------------

_LOOP4 = ipaddress.ip_address("127.0.0.1")
_LOOP6 = ipaddress.ip_address("::1")


def test_allow_list_syntax_and_matching() -> None:
    allow = HttpAllowList.parse(
        " Api.Internal. ,10.0.0.0/8,127.0.0.1:8080, [::1]:9000 ,fd00::/8,*.corp.example,"
        "192.168.1.5, db.internal:5984,,"
    )
    assert str(allow) == (
        "api.internal,10.0.0.0/8,127.0.0.1:8080,[::1]:9000,fd00::/8,*.corp.example,"
        "192.168.1.5,db.internal:5984"
    )
    ten = ipaddress.ip_address("10.9.8.7")
    # host names: exact and case-insensitive, whatever they resolve to, any port
    assert allow.permits("api.internal", 443, _LOOP4)
    assert allow.permits("API.internal.", 80, ten)
    assert not allow.permits("x.api.internal", 80, _LOOP4)
    # *.suffix: subdomains only
    assert allow.permits("a.b.corp.example", 80, _LOOP4)
    assert not allow.permits("corp.example", 80, _LOOP4)
    assert not allow.permits("evilcorp.example", 80, _LOOP4)
    # host:port
    assert allow.permits("db.internal", 5984, _LOOP4)
    assert not allow.permits("db.internal", 5985, _LOOP4)
    # IP addresses and ranges match the resolved address
    assert allow.permits("anything.example", 1234, ten)
    assert allow.permits("127.0.0.1", 8080, _LOOP4)
    assert not allow.permits("127.0.0.1", 8081, _LOOP4)
    assert allow.permits("::1", 9000, _LOOP6)
    assert not allow.permits("::1", 9001, _LOOP6)
    assert allow.permits("x", 1, ipaddress.ip_address("fd00:ec2::254"))
    assert allow.permits("x", 1, ipaddress.ip_address("::ffff:10.0.0.1"))  # mapped
    assert allow.permits("192.168.1.5", 1, ipaddress.ip_address("192.168.1.5"))
    assert not allow.permits("x", 1, ipaddress.ip_address("192.168.1.6"))
    assert not allow.permits("x", 1, ipaddress.ip_address("169.254.169.254"))


def test_allow_list_from_several_strings_env_and_union() -> None:
    assert not HttpAllowList.parse("")
    assert not HttpAllowList.parse(None)
    assert not HttpAllowList.from_env({})
    first = HttpAllowList.parse(["localhost", "10.0.0.0/8,localhost"])
    assert str(first) == "localhost,10.0.0.0/8"
    env = HttpAllowList.from_env({"TDSL_HTTP_ALLOW": "127.0.0.1:80"})
    assert str(env | first) == "127.0.0.1:80,localhost,10.0.0.0/8"
    assert HttpAllowList.coerce(first) is first
    assert str(HttpAllowList.coerce(["a.example", "b.example"])) == "a.example,b.example"


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("http://localhost", "not a URL"),
        ("10.1.2.3/8", "host bits set"),
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("localhost:http", "not a TCP port"),
        ("localhost:0", "not a TCP port"),
        ("localhost:65536", "not a TCP port"),
        ("[::1", "[address]:port"),
        ("[::1]8080", "[address]:port"),
        ("1:2:3", "1:2:3"),
        ("two words", "not a host name"),
        ("*", "not a host name"),
        ("a.*.example", "not a host name"),
        ("bücher.example", "IDNA"),
    ],
)
def test_a_bad_allow_list_entry_says_which_and_why(entry: str, why: str) -> None:
    with pytest.raises(InputError, match="bad entry") as caught:
        HttpAllowList.parse(f"localhost,{entry}", source="TDSL_HTTP_ALLOW")
    message = str(caught.value)
    assert message.startswith(f"TDSL_HTTP_ALLOW: bad entry {entry!r}")
    assert why in message
    assert "\n" not in message


def test_builtin_activities_read_the_allow_list_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TDSL_HTTP_ALLOW", "127.0.0.1:8080,metrics.internal")
    acts = BuiltinActivities()
    monkeypatch.setenv("TDSL_HTTP_ALLOW", "")
    assert str(acts.http_allow) == "127.0.0.1:8080,metrics.internal"
    assert not BuiltinActivities().http_allow
    assert str(BuiltinActivities(http_allow="10.0.0.0/8").http_allow) == "10.0.0.0/8"
    monkeypatch.setenv("TDSL_HTTP_ALLOW", "http://x")
    with pytest.raises(InputError, match="TDSL_HTTP_ALLOW: bad entry 'http://x'"):
        BuiltinActivities()


def test_cli_refuses_a_bad_http_allow_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TDSL_HTTP_ALLOW", raising=False)
    assert main(["worker", "--http-allow", "localhost", "--http-allow", "10.0.0.0/33"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("tdsl: error: --http-allow: bad entry '10.0.0.0/33'")
    monkeypatch.setenv("TDSL_HTTP_ALLOW", "10.1.2.3/8")
    assert main(["dev", "--http-allow", "localhost"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "tdsl: error: TDSL_HTTP_ALLOW: bad entry '10.1.2.3/8': 10.1.2.3/8 has host bits set\n"
    )


# --- the backend, with an injected resolver ------------------------------------------------


def _resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> http_guard.Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


async def test_every_resolved_address_is_checked() -> None:
    table = {
        "public.example": ["93.184.215.14", "2606:4700::1111"],
        "mixed.example": ["93.184.215.14", "10.0.0.7"],
    }
    backend = GuardedBackend(HttpAllowList(), resolver=_resolver(table))
    assert [str(a) for a in await backend.addresses("public.example", 443)] == [
        "93.184.215.14",
        "2606:4700::1111",
    ]
    with pytest.raises(ForbiddenAddressError) as caught:
        await backend.addresses("mixed.example", 443)
    assert str(caught.value.address) == "10.0.0.7"
    assert str(caught.value) == (
        "refused to connect to mixed.example:443: mixed.example resolves to 10.0.0.7, "
        "a private address; allow it with TDSL_HTTP_ALLOW=mixed.example:443 or "
        "`tdsl worker --http-allow mixed.example:443`"
    )
    allowed = GuardedBackend(HttpAllowList.parse("10.0.0.0/24"), resolver=_resolver(table))
    assert len(await allowed.addresses("mixed.example", 443)) == 2


async def test_ip_literals_are_not_resolved() -> None:
    calls: list[str] = []
    backend = GuardedBackend(HttpAllowList(), resolver=_resolver({}, calls))
    for host in ("169.254.169.254", "::1", "[::1]", "::ffff:127.0.0.1"):
        with pytest.raises(ForbiddenAddressError):
            await backend.addresses(host, 80)
    assert [str(a) for a in await backend.addresses("8.8.8.8", 53)] == ["8.8.8.8"]
    assert calls == []


# --- the activity against real local servers ------------------------------------------------


def _response(status: int, body: Any, *headers: str) -> bytes:
    data = json.dumps(body).encode()
    head = [
        f"HTTP/1.1 {status} X",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


class _Server:
    """A raw HTTP/1.1 server on a free port that counts what reaches it."""

    def __init__(self, respond: Callable[[str], bytes] | None = None, host: str = "127.0.0.1"):
        self.respond = respond or (lambda path: _response(200, {"path": path}))
        self.host = host
        self.connections = 0
        self.requests: list[tuple[str, str]] = []  # (request line, Host header)
        self.port = 0

    async def __aenter__(self) -> _Server:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            host = next(
                (h.split(":", 1)[1].strip() for h in head if h.lower().startswith("host:")), ""
            )
            self.requests.append((head[0], host))
            writer.write(self.respond(head[0].split(" ")[1]))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[_Server]:
    async with _Server() as running:
        yield running


async def _call(
    params: dict[str, Any], allow: HttpAllowList | str | Sequence[str] = ()
) -> dict[str, Any]:
    acts = BuiltinActivities(http_allow=allow)
    try:
        result: dict[str, Any] = await ActivityEnvironment().run(acts.http_request, params)
        return result
    finally:
        await acts.close()


async def _refused(
    params: dict[str, Any], allow: HttpAllowList | str | Sequence[str] = ()
) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await _call(params, allow)
    assert caught.value.type == FORBIDDEN_ADDRESS, caught.value.message
    assert caught.value.non_retryable
    return caught.value


async def test_loopback_is_refused_by_default(server: _Server) -> None:
    refused = await _refused({"url": f"{server.url}/api/v1/namespaces/default/workflows"})
    entry = f"127.0.0.1:{server.port}"
    assert refused.message == (
        f"http.request: refused to connect to {entry}: 127.0.0.1 is a loopback address; "
        f"allow it with TDSL_HTTP_ALLOW={entry} or `tdsl worker --http-allow {entry}`"
    )
    assert refused.details == ({"host": "127.0.0.1", "port": server.port, "address": "127.0.0.1"},)
    assert server.connections == 0


@pytest.mark.parametrize(
    ("host", "allow"),
    [
        ("127.0.0.1", "127.0.0.1:{port}"),
        ("127.0.0.1", "127.0.0.0/8"),
        ("127.0.0.1", "127.0.0.1"),
        ("localhost", "localhost"),
        ("localhost", "LOCALHOST:{port}"),
    ],
)
async def test_the_allow_list_lets_local_servers_through(
    server: _Server, host: str, allow: str
) -> None:
    result = await _call({"url": f"http://{host}:{server.port}/ok"}, allow.format(port=server.port))
    assert (result["status"], result["body"]) == (200, {"path": "/ok"})
    assert server.requests == [("GET /ok HTTP/1.1", f"{host}:{server.port}")]


async def test_an_allowed_port_does_not_allow_another(server: _Server) -> None:
    refused = await _refused({"url": f"{server.url}/"}, f"127.0.0.1:{server.port + 1}")
    assert f"127.0.0.1:{server.port}" in refused.message
    assert server.connections == 0


async def test_every_redirect_hop_is_checked(server: _Server) -> None:
    async with _Server(lambda path: _response(302, {}, f"Location: {server.url}/secret")) as front:
        refused = await _refused({"url": f"{front.url}/start"}, f"127.0.0.1:{front.port}")
        assert f"127.0.0.1:{server.port}" in refused.message
        assert front.connections == 1
        assert server.connections == 0
        # both allowed: the redirect is followed
        both = [f"127.0.0.1:{front.port}", f"127.0.0.1:{server.port}"]
        result = await _call({"url": f"{front.url}/start"}, both)
        assert result["body"] == {"path": "/secret"}


async def test_a_redirect_to_a_metadata_service_or_a_file_is_refused() -> None:
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    async with _Server(lambda path: _response(302, {}, f"Location: {metadata}")) as front:
        began = time.monotonic()
        refused = await _refused({"url": front.url, "timeout": 5}, f"127.0.0.1:{front.port}")
        assert "169.254.169.254:80: 169.254.169.254 is a cloud metadata address" in refused.message
        assert time.monotonic() - began < 2
    async with _Server(lambda path: _response(301, {}, "Location: file:///etc/passwd")) as front:
        with pytest.raises(ApplicationError) as caught:
            await _call({"url": front.url}, f"127.0.0.1:{front.port}")
        assert (caught.value.type, caught.value.non_retryable) == ("InvalidParameters", True)
        assert "redirected to 'file://" in caught.value.message


async def test_redirect_loops_stop_early() -> None:
    async with _Server(lambda path: _response(302, {}, "Location: /again")) as loop:
        with pytest.raises(ApplicationError) as caught:
            await _call({"url": loop.url}, f"127.0.0.1:{loop.port}")
        assert (caught.value.type, caught.value.non_retryable) == ("TooManyRedirects", True)
        assert loop.connections == MAX_REDIRECTS + 1


async def test_a_name_resolving_to_an_internal_address_is_refused(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = {
        "public.example": ["127.0.0.1"],
        "mixed.example": ["93.184.215.14", "127.0.0.1"],
    }
    # GuardedBackend looks the default resolver up when the client is created
    monkeypatch.setattr(http_guard, "system_resolver", _resolver(table))
    url = f"http://public.example:{server.port}/x"
    refused = await _refused({"url": url})
    assert "public.example resolves to 127.0.0.1, a loopback address" in refused.message
    assert server.connections == 0
    mixed = await _refused({"url": f"http://mixed.example:{server.port}/x"})
    assert "resolves to 127.0.0.1" in mixed.message
    assert server.connections == 0
    # allowed by name: the checked address is the one connected to; Host stays the name
    result = await _call({"url": url}, "public.example")
    assert result["body"] == {"path": "/x"}
    assert server.requests == [("GET /x HTTP/1.1", f"public.example:{server.port}")]
    # a name that does not resolve is a (retryable) connection error
    with pytest.raises(ApplicationError) as unknown:
        await _call({"url": "http://nowhere.example/"})
    assert (unknown.value.type, unknown.value.non_retryable) == ("HttpConnectionError", False)


async def test_guarded_client_takes_a_resolver(server: _Server) -> None:
    resolver = _resolver({"public.example": ["127.0.0.1"]})
    url = f"http://public.example:{server.port}/y"
    async with guarded_client(HttpAllowList(), resolver=resolver) as client:
        with pytest.raises(ForbiddenAddressError):
            await client.get(url)
    async with guarded_client(HttpAllowList.parse("public.example"), resolver=resolver) as client:
        assert (await client.get(url)).json() == {"path": "/y"}


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://2130706433:{port}/",  # 127.0.0.1 in decimal
        "http://0x7f000001:{port}/",
        "http://127.1:{port}/",
        "http://0:{port}/",  # 0.0.0.0 reaches the local host on Linux
        "http://0.0.0.0:{port}/",
        "http://localhost:{port}/",
        "http://10.255.255.1/",
    ],
)
async def test_disguised_internal_addresses_are_refused_without_connecting(
    server: _Server, url: str
) -> None:
    began = time.monotonic()
    await _refused({"url": url.format(port=server.port), "timeout": 5})
    assert time.monotonic() - began < 2  # refused, not timed out
    assert server.connections == 0


async def test_ipv6_loopback_server_is_not_reached() -> None:
    try:
        v6 = _Server(host="::1")
        await v6.__aenter__()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        await _refused({"url": f"{v6.url}/"})
        assert v6.connections == 0
        result = await _call({"url": f"{v6.url}/six"}, f"[::1]:{v6.port}")
        assert result["body"] == {"path": "/six"}
    finally:
        await v6.__aexit__()


async def test_proxy_variables_do_not_bypass_the_guard(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _Server(lambda path: _response(200, {"proxied": path})) as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        await _refused({"url": f"{server.url}/"})
        await _refused({"url": "http://10.255.255.1/", "timeout": 5})
        await _refused({"url": "http://169.254.169.254/latest/meta-data/"})
        # allowed: straight to the server, still not through the proxy
        result = await _call({"url": f"{server.url}/direct"}, f"127.0.0.1:{server.port}")
        assert result["body"] == {"path": "/direct"}
        assert proxy.connections == 0
        assert server.connections == 1


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/",
        "gopher://127.0.0.1:6379/_INFO",
        "example.com/no-scheme",
        "http://user:s3cret@example.com/",
        "http://169.254.169.254@example.com/",
    ],
)
async def test_other_schemes_and_user_info_are_refused_before_any_io(url: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        await _call({"url": url})
    assert (caught.value.type, caught.value.non_retryable) == ("InvalidParameters", True)
    assert "s3cret" not in caught.value.message
