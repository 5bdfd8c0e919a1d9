"""Several broker hosts in one URL, and the order a client tries them in.

``amqp://user:pass@h1:5672,h2:5673,[::1]:5674/vhost`` names the nodes of one
cluster (same credentials, vhost and options). :func:`split_hosts` parses the
host list; :func:`connect_order` is the pure decision of which node to try
first: the URL's order (``host_order=ordered``, the default) or a random
permutation (``host_order=shuffle``, spreading clients over the nodes), with
every node that failed recently moved to the end, oldest failure first, so a
client reconnecting after a node died goes to the *next* node instead of
waiting for the dead one's connect timeout again.

:class:`FailureMemory` is that recent-failure record (per process, keyed by
``host:port``, on the monotonic clock: asyncio's and trio's clocks differ).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal
from urllib.parse import SplitResult, urlsplit, urlunsplit

from relayna.errors import ConfigurationError

__all__ = [
    "FAILURE_MEMORY",
    "HOST_ORDERS",
    "Address",
    "FailureMemory",
    "HostOrder",
    "connect_order",
    "host_url",
    "split_hosts",
]

Address = tuple[str, int]
HostOrder = Literal["ordered", "shuffle"]
HOST_ORDERS: tuple[HostOrder, ...] = ("ordered", "shuffle")


def _one_host(item: str, default_port: int, redacted: str, index: int) -> Address:
    where = f"host #{index + 1} {item!r} of {redacted}"
    if not item:
        raise ConfigurationError(f"empty host #{index + 1} in {redacted}")
    if "@" in item or "/" in item:
        raise ConfigurationError(f"{where}: a host may not contain '@' or '/'")
    try:
        parts = urlsplit(f"//{item}")
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"bad port in {where}: {exc}") from None
    host = parts.hostname
    if not host:
        raise ConfigurationError(f"no host name in {where}")
    if port == 0:
        raise ConfigurationError(f"bad port in {where}: port 0")
    if item.rstrip("]").endswith(":"):
        raise ConfigurationError(f"bad port in {where}: empty port")
    return host, port if port is not None else default_port


def split_hosts(hostlist: str, default_port: int, redacted: str) -> tuple[Address, ...]:
    """Parse the host part of a netloc (after ``@``): ``h1:5672,h2,[::1]:5674``.

    An empty host list means ``localhost``. Repeated hosts are kept once.

    Raises:
        ConfigurationError: an empty item, a missing host name or a bad port,
            naming the item and its position.
    """
    if not hostlist:
        return (("localhost", default_port),)
    seen: dict[Address, None] = {}
    for index, item in enumerate(hostlist.split(",")):
        seen.setdefault(_one_host(item, default_port, redacted, index), None)
    return tuple(seen)


def connect_order(
    hosts: Sequence[Address],
    order: HostOrder,
    failed_at: Mapping[Address, float],
    *,
    rng: random.Random | None = None,
) -> list[Address]:
    """The order to try ``hosts`` in: ``order`` for the healthy ones, then the
    ones in ``failed_at`` (recent failures), the longest-failed first."""
    candidates = list(hosts)
    if order == "shuffle":
        (rng or random.Random()).shuffle(candidates)
    healthy = [h for h in candidates if h not in failed_at]
    failed = sorted((h for h in candidates if h in failed_at), key=lambda h: failed_at[h])
    return healthy + failed


class FailureMemory:
    """When each ``host:port`` last failed (connect refused, handshake failed,
    connection lost), forgotten after ``window`` seconds or a success."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._failed: dict[Address, float] = {}

    def failed(self, address: Address) -> None:
        self._failed[address] = time.monotonic()

    def succeeded(self, address: Address) -> None:
        self._failed.pop(address, None)

    def clear(self) -> None:
        """Forget every failure (every node is tried in the URL's order again)."""
        self._failed.clear()

    def recent(self, hosts: Iterable[Address]) -> dict[Address, float]:
        now = time.monotonic()
        return {
            h: at
            for h in hosts
            if (at := self._failed.get(h)) is not None and now - at < self.window
        }


#: The process-wide record the native client and the aiormq adapter share.
FAILURE_MEMORY = FailureMemory()


def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(f"cannot parse broker URL: {exc}") from None


def host_url(url: str, address: Address) -> str:
    """``url`` with its host list replaced by the one ``address`` (for clients
    that take a single-host URL, e.g. aiormq); ``host_order`` is dropped."""
    parts = _split(url)
    userinfo = parts.netloc.rpartition("@")[0]
    host, port = address
    shown = f"[{host}]" if ":" in host else host
    netloc = (userinfo + "@" if userinfo else "") + f"{shown}:{port}"
    query = "&".join(q for q in parts.query.split("&") if q and not q.startswith("host_order="))
    return urlunsplit(parts._replace(netloc=netloc, query=query))
