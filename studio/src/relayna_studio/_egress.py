"""The egress policy: which hosts and addresses Studio may call (pure decisions).

Applied at registration (every base URL of a service record) and inside
every outbound connection (:mod:`relayna_studio._egress_http`), so that the
address Studio connects to is the address it checked.

Rules, in order (ANCHOR §3.2 plus what the original lacked, RELIABILITY D.1):

1. **Literal IP hosts** are allowed only inside a configured CIDR
   (``RELAYNA_STUDIO_CAPABILITY_REFRESH_ALLOWED_NETWORKS``); with none
   configured every literal IP is rejected.
2. **Numeric host spellings** that are not canonical IP literals
   (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``) are rejected:
   resolvers turn them into addresses that URL parsers do not see.
3. **Hostnames** must match an allowed pattern: ``.suffix`` by suffix,
   anything else exactly (``*.x`` was normalised to ``.x``).
4. **Every resolved address** of an allowed hostname is checked: an address
   inside an allowed CIDR passes; otherwise an address that embeds IPv4
   (IPv4-mapped ``::ffff:0:0/96``, IPv4-compatible ``::/96``, NAT64
   ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo) is rejected, and so is any
   address that is not globally routable (loopback, private, link-local,
   multicast, unspecified, CGNAT, reserved). One bad address rejects the
   whole name (an attacker controls which record a client picks).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import attrs

from relayna_studio._errors import EgressDenied
from relayna_studio._settings import DEFAULT_ALLOWED_HOSTS, Network, host_patterns, networks
from relayna_studio._urls import BaseUrl

__all__ = ["EgressPolicy", "IPAddress"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_COMPAT = ipaddress.IPv6Network("::/96")
_6TO4 = ipaddress.IPv6Network("2002::/16")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> bool:
    return (
        address.ipv4_mapped is not None
        or address in _COMPAT
        or address in _NAT64
        or address in _NAT64_LOCAL
        or address in _6TO4
        or address.teredo is not None
    )


def _numeric_spelling(host: str) -> bool:
    """True for IPv4 spellings that ``ipaddress`` rejects but resolvers accept."""
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


@attrs.frozen
class EgressPolicy:
    """Host patterns and CIDRs; see the module docs for the rules."""

    allowed_hosts: tuple[str, ...] = attrs.field(
        default=DEFAULT_ALLOWED_HOSTS, converter=host_patterns
    )
    allowed_networks: tuple[Network, ...] = attrs.field(default=(), converter=networks)

    def _in_networks(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.allowed_networks)

    def host_allowed(self, host: str) -> bool:
        host = host.lower()
        for pattern in self.allowed_hosts:
            if pattern.startswith("."):
                if host.endswith(pattern) and len(host) > len(pattern):
                    return True
            elif host == pattern:
                return True
        return False

    def check_target(self, target: BaseUrl) -> IPAddress | None:
        """Check the host of a parsed URL; returns the address for a literal IP.

        Raises:
            EgressDenied: the host (or literal address) is not allowed.
        """
        return self.check_host(target.host)

    def check_host(self, host: str) -> IPAddress | None:
        """As :meth:`check_target`, for a bare host (no brackets)."""
        host = host.strip().lower()
        if not host:
            raise EgressDenied("URL has no host", reason="no_host")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            if not self._in_networks(literal):
                raise EgressDenied(
                    f"literal IP {literal} is outside the allowed networks",
                    reason="address_not_allowed",
                    host=host,
                )
            return literal
        if _numeric_spelling(host):
            raise EgressDenied(
                f"host {host!r} is a numeric IP spelling; use a hostname or a canonical IP",
                reason="numeric_host",
                host=host,
            )
        if not self.host_allowed(host):
            raise EgressDenied(
                f"host {host!r} is not in the allowed hosts", reason="host_not_allowed", host=host
            )
        return None

    def check_address(self, host: str, address: IPAddress) -> None:
        """Check one resolved address of ``host``.

        Raises:
            EgressDenied: reason ``address_not_allowed``.
        """
        if self._in_networks(address):
            return
        if isinstance(address, ipaddress.IPv6Address) and _embedded_ipv4(address):
            why = "embeds an IPv4 address"
        elif address.is_multicast or not address.is_global:
            why = "is not a public address"
        else:
            return
        raise EgressDenied(
            f"host {host!r} resolved to {address}, which {why} and is outside the allowed networks",
            reason="address_not_allowed",
            host=host,
        )

    def check_addresses(self, host: str, addresses: Iterable[IPAddress]) -> None:
        for address in addresses:
            self.check_address(host, address)
