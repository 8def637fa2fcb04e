"""URLs the service calls on a user's behalf (webhooks, MCP servers) — one rule for both (SPEC §11).

A user may only point the service at a public host: loopback, private, link-local, unspecified,
multicast, reserved and shared (100.64.0.0/10) addresses are refused, unless
ARKLOOP_ALLOW_PRIVATE_URLS is on (development, tests, a trusted network). The rule is applied
twice:

- `check_outbound_url(url)` when a URL is stored (422 naming the field): `http`/`https`, at most
  2048 characters, a host; a literal address must be public, and so must every address a name
  resolves to now. A name that does not resolve now is accepted: the connection checks it again.
- `PublicOnlyTransport` when a request is sent: an httpx transport that resolves the host itself,
  refuses unless every address is public, and connects to the address it checked (the Host header
  and TLS server name stay the URL's), so a DNS answer that changes between the check and the
  connection cannot reach a private address. Any httpx client can use it (`transport=`);
  `PublicOnlyTransport2` is the same for httpx2 clients — the fork of httpx, with the same transport
  interface, that the official MCP SDK speaks.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx
import httpx2
from django.conf import settings

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundRefused(Exception):
    """The URL is malformed or leads to an address the service may not call. Safe to show."""


def private_urls_allowed() -> bool:
    return bool(getattr(settings, "ARKLOOP_ALLOW_PRIVATE_URLS", False))


def is_public_address(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (address.is_private or address.is_loopback or address.is_link_local or address.is_unspecified
                or address.is_multicast or address.is_reserved or address in _SHARED)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _split(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a well-formed outbound URL, else OutboundRefused."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise OutboundRefused(f"must be an http or https URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundRefused("is not a valid URL") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise OutboundRefused("must be an http or https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused("must not carry a user name or password")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise OutboundRefused("must not contain spaces or control characters")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _refuse_unless_public(addresses: list[Address]) -> None:
    if not private_urls_allowed() and any(not is_public_address(a) for a in addresses):
        raise OutboundRefused("must not point at a loopback, private, link-local or unspecified address")


def _resolve(host: str, port: int) -> list[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_outbound_url(url: str) -> str:
    """The URL when it may be stored; raises OutboundRefused with the reason otherwise."""
    _, host, port = _split(url)
    literal = _literal(host)
    if literal is not None:
        _refuse_unless_public([literal])
        return url
    if host.rstrip(".").lower() == "localhost" or host.rstrip(".").lower().endswith(".localhost"):
        _refuse_unless_public([ipaddress.ip_address("127.0.0.1")])
        return url
    if private_urls_allowed():
        return url
    try:
        addresses = _resolve(host, port)
    except (OSError, UnicodeError):
        return url  # does not resolve now: checked again when a request is sent
    _refuse_unless_public(addresses)
    return url


async def outbound_address(url: httpx.URL | httpx2.URL, *, http: ModuleType = httpx) -> Address:
    """The address to connect to for `url`: resolved and checked now (OutboundRefused otherwise).

    A name that does not resolve is `http.ConnectError` (`http`: the httpx or httpx2 module).
    """
    scheme, host, port = _split(str(url))
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise http.ConnectError(f"cannot resolve {host}: {exc}") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        if not addresses:
            raise http.ConnectError(f"cannot resolve {host}")
    _refuse_unless_public(addresses)
    return addresses[0]


class _PublicOnly:
    """An httpx(2) transport that connects only to addresses `check_outbound_url`'s rule allows.

    Raises OutboundRefused (before any byte is sent) for a private address. Redirects are the
    client's business; use `follow_redirects=False` (every caller here does).
    """

    http: ModuleType  # the httpx or httpx2 module

    def __init__(self, **transport_options) -> None:
        self._inner = self.http.AsyncHTTPTransport(**transport_options)

    async def handle_async_request(self, request: Any) -> Any:  # an httpx or httpx2 Request → Response
        address = await outbound_address(request.url, http=self.http)
        host = request.url.host
        if _literal(host) is None:
            ip = f"[{address}]" if address.version == 6 else str(address)
            request.url = request.url.copy_with(host=ip)
            request.extensions = {**request.extensions, "sni_hostname": host}
            # The Host header the client built from the original URL is kept as it is.
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class PublicOnlyTransport(_PublicOnly, httpx.AsyncBaseTransport):
    """For httpx clients (webhook deliveries)."""

    http = httpx


class PublicOnlyTransport2(_PublicOnly, httpx2.AsyncBaseTransport):
    """For httpx2 clients (the MCP SDK's streamable HTTP transport)."""

    http = httpx2
