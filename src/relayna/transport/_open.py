"""Open a broker or store from a URL: the scheme selects the adapter.

Broker: ``amqp://``, ``amqps://`` (native anyio client, or aiormq with
``adapter="aiormq"`` on asyncio), ``memory://``.
Store: ``redis://``, ``rediss://``, ``unix://`` (relayna's own RESP client,
``adapter="native"``, by default; coredis with ``adapter="coredis"``; redis-py with
``adapter="redis-py"`` on asyncio), ``memory://``.

Adapters are imported lazily so that an optional dependency is needed only
when its adapter is selected.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Literal

from relayna._urls import split_url
from relayna.errors import ConfigurationError
from relayna.transport._broker import Broker
from relayna.transport._store import Store

__all__ = ["BROKER_SCHEMES", "STORE_SCHEMES", "open_broker", "open_store"]

BROKER_SCHEMES = ("amqp", "amqps", "memory")
STORE_SCHEMES = ("redis", "rediss", "unix", "memory")


def open_broker(
    url: str, *, adapter: Literal["native", "aiormq"] = "native"
) -> AbstractAsyncContextManager[Broker]:
    """Return an async context manager that opens the broker at ``url``.

    Raises:
        ConfigurationError: unparseable URL, unknown scheme, or an adapter
            that cannot run under the current async backend.
    """
    parts = split_url(url, schemes=BROKER_SCHEMES)
    if parts.scheme == "memory":
        from relayna.transport.memory_broker import open_memory_broker

        return open_memory_broker(url)
    if adapter == "aiormq":
        from relayna.transport._broker_aiormq import open_aiormq_broker

        return open_aiormq_broker(url)
    from relayna.transport.amqp import open_amqp_broker

    return open_amqp_broker(url)


def open_store(
    url: str, *, adapter: Literal["native", "coredis", "redis-py"] = "native"
) -> AbstractAsyncContextManager[Store]:
    """Return an async context manager that opens the store at ``url``.

    Raises:
        ConfigurationError: unparseable URL, unknown scheme, or an adapter
            that cannot run under the current async backend.
    """
    parts = split_url(url, schemes=STORE_SCHEMES)
    if parts.scheme == "memory":
        from relayna.transport._store_memory import open_memory_store

        return open_memory_store(url)
    if adapter == "redis-py":
        from relayna.transport._store_redispy import open_redispy_store

        return open_redispy_store(url)
    if adapter == "coredis":
        from relayna.transport._store_coredis import open_coredis_store

        return open_coredis_store(url)
    if adapter != "native":
        raise ConfigurationError(
            f"unknown store adapter {adapter!r}; expected 'native', 'coredis' or 'redis-py'"
        )
    from relayna.transport.resp import open_native_store

    return open_native_store(url)
