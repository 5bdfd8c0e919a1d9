"""``redis+cluster://`` URLs and Redis Cluster's key hashing.

A cluster URL names one or more seed nodes, comma-separated; the store reads
the slot map from the first seed that answers and finds every other node
there::

    redis+cluster://[user:password@]host1:port1,host2:port2[/0][?options]
    rediss+cluster://...   (TLS to every node)

Options are those of ``redis://`` (``connect_timeout``, ``stream_timeout``,
``pubsub_keepalive``, ``ssl_*``) plus ``failover_timeout`` (seconds a command
keeps retrying while the cluster cannot serve its slot, default 10).

Refused with :class:`~relayna.errors.ConfigurationError`: a database other
than 0 (a cluster has only database 0), ``unix://`` sockets, and several hosts
in a plain ``redis://`` URL (ambiguous: a cluster is named by its scheme, never
guessed from the host list).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs, urlencode

import attrs

from relayna._urls import redact_url
from relayna.errors import ConfigurationError
from relayna.transport._keyslot import CLUSTER_SLOTS as SLOTS
from relayna.transport._keyslot import key_slot
from relayna.transport._store_options import positive_seconds
from relayna.transport.resp._url import RespParams, parse_resp_url

__all__ = [
    "CLUSTER_SCHEMES",
    "SLOTS",
    "ClusterParams",
    "key_slot",
    "parse_cluster_url",
]

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_FAILOVER_TIMEOUT = 10.0


@attrs.frozen
class ClusterParams:
    url: str  # password-redacted
    seeds: tuple[RespParams, ...]
    failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT

    def node(self, host: str, port: int) -> RespParams:
        """Connection parameters of another node: the seeds' credentials and options."""
        scheme = "rediss" if self.seeds[0].tls else "redis"
        return attrs.evolve(self.seeds[0], host=host, port=port, url=f"{scheme}://{host}:{port}")


def parse_cluster_url(url: str) -> ClusterParams:
    """Parse a ``redis+cluster://`` URL (see the module docstring).

    Raises:
        ConfigurationError: not a cluster URL, no host, a bad host or option, db != 0.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"expected a URL string, got {url!r}")
    safe = redact_url(url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in CLUSTER_SCHEMES:
        raise ConfigurationError(
            f"not a Redis Cluster URL: {safe}; expected redis+cluster:// or rediss+cluster://"
        )
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
    userinfo, at, hosts = netloc.rpartition("@")
    if not hosts.strip(","):
        raise ConfigurationError(f"no host in {safe}")
    if path not in ("", "0"):
        raise ConfigurationError(f"a Redis Cluster has only database 0, not {path!r}: {safe}")
    try:
        pairs = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ConfigurationError(f"cannot parse the query of {safe}: {exc}") from None
    failover = DEFAULT_FAILOVER_TIMEOUT
    if "failover_timeout" in pairs:
        failover = positive_seconds("failover_timeout", pairs.pop("failover_timeout")[-1], safe)
    if pairs.get("db", ["0"])[-1] != "0":
        raise ConfigurationError(f"a Redis Cluster has only database 0: {safe}")
    node_scheme = scheme.removesuffix("+cluster")
    node_query = urlencode([(k, v) for k, vs in pairs.items() for v in vs])
    seeds: list[RespParams] = []
    for host in hosts.split(","):
        if not host:
            raise ConfigurationError(f"an empty host in {safe}")
        node_url = f"{node_scheme}://{userinfo}{at}{host}/" + (f"?{node_query}" if query else "")
        try:
            seeds.append(parse_resp_url(node_url))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{exc} (in {safe})") from None
    return ClusterParams(url=safe, seeds=tuple(seeds), failover_timeout=failover)


def check_one_slot(keys: Sequence[str], what: str) -> int | None:
    """The one slot of ``keys`` (None without keys), or CrossSlotError naming them."""
    from relayna.errors import CrossSlotError

    slots = {key_slot(k) for k in keys}
    if len(slots) > 1:
        named = ", ".join(f"{k!r} (slot {key_slot(k)})" for k in keys)
        raise CrossSlotError(
            f"{what}: keys in different Redis Cluster slots: {named}; give them one {{hash tag}}",
            keys=tuple(keys),
        )
    return slots.pop() if slots else None
