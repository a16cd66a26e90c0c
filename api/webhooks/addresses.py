"""Which webhook receivers the ledger may call: public addresses only, unless the operator allows more.

A key that may register a webhook must not be able to make the ledger's own host call what
only it can reach (the database, a metadata service, an admin console on loopback): that
is server-side request forgery. So a receiver's address must be global (not loopback,
private, link-local, shared, reserved or multicast) unless `webhook_private_networks` is
set, for a single machine, a test bench or an internal network.

Checked twice: at registration, for a URL naming such an address outright; and before every
delivery, on every address the receiver's name resolves to then (a name may be pointed
elsewhere after registering). A name re-pointed between that check and the connection
itself is not caught; putting the receivers behind an egress proxy closes that too.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

RESOLVED_FOR = 60.0
"""Seconds a name's verdict is kept before the name is resolved again."""


class NonPublicAddress(Exception):
    """A receiver's address is not a public one, and the settings do not allow others."""


def refused_literal(host: str) -> str | None:
    """Why a URL's host may not be a receiver, judged without resolving it: an address that is not
    public, or `localhost`; None if it is a public address or a name to resolve later."""
    if host.lower().rstrip(".") == "localhost" or host.lower().endswith(".localhost"):
        return f"{host} is this machine"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return None if _public(address) else f"{host} is not a public address"


class Resolver:
    """Checks that a receiver's name resolves only to public addresses (verdicts kept a minute)."""

    def __init__(self) -> None:
        self._verdicts: dict[tuple[str, int], tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def check(self, host: str, port: int) -> None:
        """Raise NonPublicAddress unless every address `host` resolves to is public."""
        refused = refused_literal(host)
        if refused is None:
            refused = self._verdict(host, port)
        if refused is not None:
            raise NonPublicAddress(refused)

    def _verdict(self, host: str, port: int) -> str | None:
        now = time.monotonic()
        with self._lock:
            kept = self._verdicts.get((host, port))
        if kept is not None and now - kept[0] < RESOLVED_FOR:
            return kept[1]
        try:
            found = {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
        except OSError:
            return None  # unresolvable: the delivery fails on its own, with the resolver's error
        hidden = sorted(a for a in found if not _public(ipaddress.ip_address(a.split("%")[0])))
        verdict = f"{host} resolves to {', '.join(hidden)}, not a public address" if hidden else None
        with self._lock:
            self._verdicts[(host, port)] = (now, verdict)
        return verdict


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
