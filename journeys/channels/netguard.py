"""Where webhook steps may send requests: public addresses only, unless an operator allows more.

A webhook URL is written by whoever edits flows; without this guard it could make the worker
POST contact data to loopback services (the Temporal UI, Postgres' neighbours), the cloud
metadata endpoint (169.254.169.254) or anything on the private network. So a target is refused
when its address is loopback, link-local, private, carrier-grade NAT, multicast, unspecified,
reserved or IPv6 unique-local, however it is spelt (`2130706433`, `0177.0.0.1`, `0x7f.1`,
`127.1`, `[::ffff:127.0.0.1]`), and when a host name resolves to such an address.

The check runs twice: when a flow is saved (`url_problem`, a clear 422) and when the request
is made (`GuardedTransport`). At request time the name is resolved once, every address is
checked, and the connection goes to the checked address with the original `Host` header and
TLS server name, so a DNS answer that changes in between (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import unquote, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# (host, port) -> the addresses the host name stands for, as strings; raises OSError if none.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


class TargetRefused(Exception):
    """The URL points at an address webhook steps may not reach."""


async def system_resolve(host: str, port: int) -> list[str]:
    """Resolves like a connection would: the OS resolver (`getaddrinfo`)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


_resolver: Resolver = system_resolve


def install_resolver(resolver: Resolver) -> Resolver:
    """Replaces the process's resolver (tests install a hosts table); returns the previous one.

    Resolution is process-wide, like `/etc/hosts`, so the API's validation and the worker's
    requests see the same answers.
    """
    global _resolver
    previous, _resolver = _resolver, resolver
    return previous


_HEX = re.compile(r"0[xX][0-9a-fA-F]*")
_OCTAL = re.compile(r"0[0-7]+")
_DECIMAL = re.compile(r"[1-9][0-9]*|0")


def _ipv4_part(text: str) -> int | None:
    # inet_aton(3) reads each part as C does: 0x… hexadecimal, 0… octal, else decimal.
    if _HEX.fullmatch(text):
        return int(text[2:] or "0", 16)
    if _OCTAL.fullmatch(text):
        return int(text, 8)
    if _DECIMAL.fullmatch(text):
        return int(text)
    return None


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """`127.1`, `0177.0.0.1`, `0x7f.1`, `2130706433`: the forms inet_aton (and so curl,
    browsers and getaddrinfo) accept, where the last part fills the remaining bytes."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    values = [_ipv4_part(part) for part in parts]
    if any(v is None for v in values):
        return None
    *head, last = values
    assert last is not None
    if any(v > 255 for v in head if v is not None) or last >= 256 ** (5 - len(parts)):
        return None
    number = 0
    for value in head:
        assert value is not None
        number = number * 256 + value
    number = (number << (8 * (5 - len(parts)))) + last
    return ipaddress.IPv4Address(number)


def parse_ip(host: str) -> IPAddress | None:
    """The address a host written as an IP literal means, in any spelling; None for a name."""
    host = unquote(host).strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    return _legacy_ipv4(host)


def refusal(address: IPAddress) -> str | None:
    """Why webhook steps may not call `address` (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and any(address in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded)
        if address in _UNIQUE_LOCAL:
            return "an IPv6 unique-local address"
        if address.is_site_local:
            return "an IPv6 site-local address"
    checks = (
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (
            isinstance(address, ipaddress.IPv4Address) and address in _CGNAT,
            "a carrier-grade NAT address",
        ),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for bad, reason in checks if bad), None)


class NetGuard:
    """Decides which webhook targets are allowed.

    Args:
        allowed: Host names, addresses or CIDR ranges that may be called although internal
            (`JOURNEYS_WEBHOOK_ALLOWED_HOSTS`). A listed name is trusted with whatever it
            resolves to; an address or range allows every name resolving into it.
        resolve_timeout: Seconds a name resolution may take.
    """

    def __init__(self, allowed: Iterable[str] = (), *, resolve_timeout: float = 5.0) -> None:
        self._names: set[str] = set()
        self._networks: list[IPNetwork] = []
        for entry in allowed:
            entry = entry.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self._names.add(entry)
        self._resolve_timeout = resolve_timeout

    def _address_problem(self, address: IPAddress) -> str | None:
        if any(address in net for net in self._networks if net.version == address.version):
            return None
        return refusal(address)

    async def _resolve(self, host: str, port: int) -> list[str]:
        return await asyncio.wait_for(_resolver(host, port), self._resolve_timeout)

    async def pin(self, host: str, port: int) -> str:
        """Checks a request's target and returns the one address to connect to.

        Raises:
            TargetRefused: the host is, or resolves to, an address webhooks may not reach,
                or does not resolve at all.
        """
        literal = parse_ip(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                resolved = await self._resolve(host, port)
            except (OSError, TimeoutError) as exc:
                raise TargetRefused(f"{host} does not resolve: {exc}") from exc
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolved]
            if not addresses:
                raise TargetRefused(f"{host} does not resolve")
            if host.lower().rstrip(".") in self._names:
                return str(addresses[0])
        for address in addresses:
            problem = self._address_problem(address)
            if problem:
                raise TargetRefused(f"{host} is {address}, {problem}")
        return str(addresses[0])

    async def url_problem(self, url: str) -> str | None:
        """Why a webhook URL may not be saved, or None.

        Literal addresses are judged without any lookup; a name is resolved, and refused if an
        answer is internal. A name that does not resolve now is accepted (it is checked again,
        and refused if still unresolvable, when the request is made).
        """
        try:
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port
        except ValueError as exc:
            return f"not a valid URL: {exc}"
        if not host:
            return "the URL has no host"
        literal = parse_ip(host)
        if literal is not None:
            problem = self._address_problem(literal)
            return f"{host} is {literal}, {problem}" if problem else None
        if host.rstrip(".") in self._names:
            return None
        default_port = 443 if parts.scheme == "https" else 80
        try:
            await self.pin(host, port or default_port)
        except TargetRefused as exc:
            if isinstance(exc.__cause__, (OSError, TimeoutError)):
                return None
            return str(exc)
        return None


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects only to addresses the guard allowed.

    The host is resolved and checked here, right before connecting, and the request is sent
    to that very address; `Host` stays the original name (httpx set it when the request was
    built) and so does the TLS server name and certificate check (`sni_hostname`).

    Args:
        guard: Decides which addresses are allowed.
        inner: The transport that makes the connection (default: httpx's own, without
            environment proxies, which would connect elsewhere).
    """

    def __init__(self, guard: NetGuard, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpx.AsyncHTTPTransport(trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        address = await self._guard.pin(host, port)
        request.url = url.copy_with(host=address)
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
