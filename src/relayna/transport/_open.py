"""Open a broker or store from a URL: the scheme selects the adapter.

Broker: ``amqp://``, ``amqps://`` (native anyio client, or aiormq with
``adapter="aiormq"`` on asyncio), ``memory://``.
Store: ``redis://``, ``rediss://``, ``unix://`` (relayna's own RESP client,
``adapter="native"``, by default; coredis with ``adapter="coredis"``; redis-py with
``adapter="redis-py"`` on asyncio), ``memory://``, and a Redis Cluster as
``redis+cluster://h1:p1,h2:p2/`` or ``rediss+cluster://`` (the native client
only). Several hosts in a ``redis://`` URL, or a ``cluster`` option, are
refused: a cluster is named by its scheme, never guessed.

Adapters are imported lazily so that an optional dependency is needed only
when its adapter is selected.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, TypeVar

from relayna._urls import join_urls, redact_url, split_url
from relayna.errors import ConfigurationError
from relayna.transport._broker import Broker
from relayna.transport._store import Store

__all__ = ["BROKER_SCHEMES", "STORE_SCHEMES", "is_cluster_store_url", "open_broker", "open_store"]

BROKER_SCHEMES = ("amqp", "amqps", "memory")
STORE_SCHEMES = ("redis", "rediss", "unix", "memory", "redis+cluster", "rediss+cluster")
_CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_CLUSTER_OPENER = "relayna.transport.resp._cluster_open:open_cluster_store"

#: ``memory://`` and each adapter name -> the ``module:opener`` serving it.
_BROKERS = {
    "memory": "relayna.transport.memory_broker:open_memory_broker",
    "native": "relayna.transport.amqp:open_amqp_broker",
    "aiormq": "relayna.transport._broker_aiormq:open_aiormq_broker",
}
_STORES = {
    "memory": "relayna.transport._store_memory:open_memory_store",
    "native": "relayna.transport.resp:open_native_store",
    "coredis": "relayna.transport._store_coredis:open_coredis_store",
    "redis-py": "relayna.transport._store_redispy:open_redispy_store",
}

_T = TypeVar("_T")


def _open(
    url: str, adapter: str, *, schemes: tuple[str, ...], openers: Mapping[str, str], what: str
) -> AbstractAsyncContextManager[_T]:
    """The one selection rule: a ``memory://`` URL opens the in-memory
    implementation (whatever the adapter), any other URL the named adapter."""
    if openers is _STORES and is_cluster_store_url(url):
        if adapter != "native":
            raise ConfigurationError(
                f"a Redis Cluster URL is served by the native adapter, not {adapter!r}"
            )
        return _load(_CLUSTER_OPENER)(url)
    if openers is _STORES:
        _refuse_cluster_guess(url)
    scheme = split_url(url, schemes=schemes, host_list=what == "broker").scheme
    key = "memory" if scheme == "memory" else adapter
    if key not in openers or (key == "memory") != (scheme == "memory"):
        names = ", ".join(repr(name) for name in openers if name != "memory")
        raise ConfigurationError(f"unknown {what} adapter {adapter!r}; expected one of {names}")
    return _load(openers[key])(url)


def is_cluster_store_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
    return isinstance(url, str) and url.partition("://")[0] in _CLUSTER_SCHEMES


def _load(target: str) -> Callable[[str], AbstractAsyncContextManager[Any]]:
    module, _, name = target.partition(":")
    opener: Callable[[str], AbstractAsyncContextManager[Any]] = getattr(
        importlib.import_module(module), name
    )
    return opener


def _refuse_cluster_guess(url: object) -> None:
    """A ``redis://`` URL with several hosts or a ``cluster`` option is ambiguous."""
    if not isinstance(url, str):
        return
    scheme, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    query = tail.partition("?")[2] or netloc.partition("?")[2]
    several = "," in netloc.rpartition("@")[2]
    if scheme in ("redis", "rediss") and (several or "cluster=" in query):
        raise ConfigurationError(
            f"{redact_url(url)} names a Redis Cluster ambiguously: write it as "
            f"{scheme}+cluster://host1:port1,host2:port2/"
        )


def open_broker(
    url: str | Sequence[str], *, adapter: Literal["native", "aiormq"] = "native"
) -> AbstractAsyncContextManager[Broker]:
    """Return an async context manager that opens the broker at ``url``.

    ``url`` may list the nodes of a RabbitMQ cluster, in its host part
    (``amqp://u:p@h1:5672,h2:5673/vhost``) or as a list of URLs that differ only
    in their host; the client connects to the first node that answers.

    Raises:
        ConfigurationError: unparseable URL, unknown scheme or adapter, or an
            adapter that cannot run under the current async backend.
    """
    return _open(join_urls(url), adapter, schemes=BROKER_SCHEMES, openers=_BROKERS, what="broker")


def open_store(
    url: str, *, adapter: Literal["native", "coredis", "redis-py"] = "native"
) -> AbstractAsyncContextManager[Store]:
    """Return an async context manager that opens the store at ``url``.

    Raises:
        ConfigurationError: unparseable URL, unknown scheme or adapter, or an
            adapter that cannot run under the current async backend.
    """
    return _open(url, adapter, schemes=STORE_SCHEMES, openers=_STORES, what="store")
