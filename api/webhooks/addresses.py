"""Which webhook receivers the ledger may call: public addresses only, unless the operator allows more.

A key that may register a webhook must not be able to make the ledger's own host call what
only it can reach (the database, a metadata service, an admin console on loopback): that
is server-side request forgery. So a receiver's address must be global (not loopback,
private, link-local, shared, reserved or multicast, nor an IPv6 form wrapping such an IPv4
address) unless `webhook_private_networks` is set, for a single machine, a test bench or an
internal network.

Checked twice: at registration, for a URL naming such an address outright; and at every
connection, by the transport the delivery worker uses (`PublicOnlyTransport`): it resolves
the receiver's name itself (as the URL spells it on the wire, IDNA-encoded), refuses if any
address it resolves to is not public or if it does not resolve, and connects to an address
it checked, so the name cannot be pointed elsewhere between the check and the connection.
TLS still verifies the certificate against the name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
"""IPv6 prefixes that translate to the IPv4 address in their last 32 bits (RFC 6052, RFC 8215)."""


def not_http(url: str) -> str | None:
    """Why a URL cannot be called over HTTP (not a URL, not http(s), no host); None if it can."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "not a URL"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "not an http:// or https:// URL with a host"
    return None


def refused_literal(host: str) -> str | None:
    """Why a URL's host may not be a receiver, judged without resolving it: an address that is not
    public, or `localhost`; None if it is a public address or a name to resolve when called."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is this machine"
    try:
        address: Address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        try:  # the other spellings of IPv4 the resolver takes as numbers: 0x7f000001, 2130706433, 127.1
            address = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None if public(address) else f"{host} is not a public address"


def public(address: Address) -> bool:
    """Whether an address is one anyone on the internet could reach, IPv4 wrapped in IPv6 unwrapped."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return public(embedded)
    return address.is_global and not address.is_multicast


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries: mapped, 6to4, Teredo, NAT64, or IPv4-compatible."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in prefix for prefix in NAT64) or int(address) >> 32 == 0:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def checked_address(host: str, port: int) -> str:
    """An address of `host` to connect to, once every address it resolves to is public.

    Raises httpcore.ConnectError (the delivery fails and is retried like any refused one).
    """
    try:
        found = [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    except (OSError, UnicodeError, ValueError) as error:
        raise httpcore.ConnectError(f"not called: {host} does not resolve ({error})") from None
    hidden = _hidden(found)
    if hidden:
        raise httpcore.ConnectError(
            f"not called: {host} resolves to {', '.join(hidden)}, not a public address"
        )
    if not found:
        raise httpcore.ConnectError(f"not called: {host} resolves to no address")
    return found[0]


def _hidden(addresses: Iterable[str]) -> list[str]:
    return sorted({a for a in addresses if not public(ipaddress.ip_address(a.split("%")[0]))})


class PublicOnlyBackend(httpcore.SyncBackend):
    """Opens TCP connections only to public addresses, to an address it has checked itself."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        address = checked_address(host, port)
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


class PublicOnlyTransport(httpx.HTTPTransport):
    """httpx's own transport, connecting through `PublicOnlyBackend` (and no proxy from the
    environment: a proxy would be the address checked, not the receiver)."""

    def __init__(self) -> None:
        super().__init__(trust_env=False)
        # httpx builds its httpcore pool without a way to pass a network backend: build it here,
        # as httpx does (tests/api/test_webhook_addresses.py fails if this stops taking effect).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=PublicOnlyBackend(),
        )
