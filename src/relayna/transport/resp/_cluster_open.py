"""Opening a Redis Cluster store: the router, classic pubsub on any live node,
and sharded pubsub on each channel's node (:mod:`._cluster_pubsub`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio

from relayna.errors import StoreAuthenticationError, StoreConnectionError
from relayna.transport._pubsub import PubSubMultiplexer, RawPubSub
from relayna.transport._store import Store
from relayna.transport._store_resp import run_resp_store
from relayna.transport.resp._cluster import ClusterRespStore
from relayna.transport.resp._cluster_pubsub import ClusterShardedPubSub
from relayna.transport.resp._cluster_url import ClusterParams, parse_cluster_url
from relayna.transport.resp._connect import open_connection
from relayna.transport.resp._store import _NativePubSub as NativePubSub

__all__ = ["open_cluster_store"]


def _pubsub_connector(store: ClusterRespStore) -> AbstractAsyncContextManager[RawPubSub]:
    """Classic pubsub on the first node that accepts a connection: a classic
    PUBLISH reaches every node's subscribers over the cluster bus. When that
    node dies the multiplexer reconnects here (to another node) and tells
    every subscriber (``PubSubReconnected``) to re-read its history."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[RawPubSub]:
        last: StoreConnectionError | None = None
        for params in store.pubsub_candidates():
            try:
                conn = await open_connection(params)
            except StoreAuthenticationError:
                raise
            except StoreConnectionError as exc:
                last = exc
                continue
            try:
                yield NativePubSub(conn)
            finally:
                with anyio.CancelScope(shield=True):
                    await conn.aclose()
            return
        raise StoreConnectionError(
            f"no Redis Cluster node accepted the pubsub connection ({last})", url=store.url
        )

    return connect()


def open_cluster_store(url: str) -> AbstractAsyncContextManager[Store]:
    """Open the Redis Cluster at ``url`` (``redis+cluster://h1:p1,h2:p2/``) with
    relayna's own client (any anyio backend).

    Raises:
        ConfigurationError: (here, before the block) unparseable URL, db other
            than 0, unknown option.
        StoreConnectionError: no seed answers ``CLUSTER SLOTS`` with a full slot map.
        StoreAuthenticationError: a node refused the password.
    """
    return _open(parse_cluster_url(url))


@asynccontextmanager
async def _open(params: ClusterParams) -> AsyncIterator[Store]:
    seed = params.seeds[0]
    holder: list[ClusterRespStore] = []

    def make(pubsub: PubSubMultiplexer) -> ClusterRespStore:
        store = ClusterRespStore(params, pubsub)
        holder.append(store)
        return store

    try:
        async with run_resp_store(
            make,
            lambda: _pubsub_connector(holder[0]),
            url=params.url,
            connect_timeout=seed.connect_timeout,
            keepalive=seed.pubsub_keepalive,
            sharded=lambda tg, store: ClusterShardedPubSub(
                store,
                tg,
                subscribe_timeout=max(10.0, params.failover_timeout),
                keepalive=seed.pubsub_keepalive,
            ),
        ) as store:
            yield store
    finally:
        for store in holder:
            await store.aclose()
