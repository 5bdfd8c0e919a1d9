"""The relayna runtime for a Starlette app: broker, store, status hub.

``relayna_lifespan(config)`` is a Starlette ``lifespan``: it opens the broker
and the store, declares the status topology, starts the :class:`StatusHub`
(after its consume-ok), all in one task group that lives as long as the app,
and yields ``{state_key: runtime}`` so that routes find it on
``request.state``.

Shutdown: leaving the lifespan sets ``runtime.shutdown_event`` (every SSE
stream then ends by itself, after the frames already buffered) and cancels
the task group. ASGI servers usually wait for open requests *before* running
the lifespan shutdown, so an app that serves long-lived SSE streams should
also set the event when it decides to stop: pass your own ``shutdown_event``
and set it from the server's shutdown trigger (see ``docs/status.md``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import anyio
import attrs

from relayna.dlq import DLQService, DLQStore, DLQStoreConfig
from relayna.observability import (
    ExecutionGraphService,
    ObservationStore,
    ObservationStoreConfig,
    RelaynaMetrics,
    ServiceEventFeed,
    ServiceEventFeedConfig,
)
from relayna.status import (
    StatusHub,
    StatusHubConfig,
    StatusStore,
    StatusStoreConfig,
    StatusStreamStats,
)
from relayna.topology import StatusTopologyBase, topology_kind
from relayna.transport import (
    Broker,
    FailoverBroker,
    Store,
    broker_opener,
    is_cluster_store_url,
    open_failover_broker,
    open_store,
)

__all__ = ["RelaynaRuntime", "RuntimeConfig", "open_relayna_runtime", "relayna_lifespan"]


def _frozen_strs(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen
class RuntimeConfig:
    """What the runtime opens.

    Attributes:
        store_url: ``redis://``, ``rediss://``, ``unix://`` or ``memory://``.
        broker_url: ``amqp://``, ``amqps://`` or ``memory://``; ``None`` runs
            without a broker (no hub, no ``/history``).
        topology: declares the status exchange/queue and names the queue the
            hub consumes; ``None`` runs without a hub.
        declare: apply ``topology.plan()`` on startup.
        run_hub: start the :class:`StatusHub`.
        hub_offset: override the topology's stream offset for the hub (where
            a hub without a stored offset starts).
        hub_name: the hub's offset record name (default: the status queue);
            replicas of one service share it.
        hub_persist_offset: keep the hub's committed offset in the store and
            resume from it (see :class:`~relayna.status.StatusHubConfig`).
        hub_max_catch_up: seconds; bounds a ``"first"``/timestamp start.
        store_adapter: the Redis client (``"native"``, ``"coredis"``, or
            ``"redis-py"`` on asyncio); see :func:`relayna.transport.open_store`.
        broker_adapter: the AMQP client (``"native"``, or ``"aiormq"`` on asyncio).
        observations: the observation store the graph route reads (and
            workers write with the same prefix); ``None`` disables it.
        feed: the service event feed that every status write appends to (in
            the same atomic script) and ``GET /events/feed`` reads; ``None``
            disables it.
        graph_max_children: children per execution graph (the rest is cut
            and reported in the graph's annotations).
        heartbeat_prefix: where workers write heartbeats (``/relayna/health/workers``).
        service_title: the service's name in the capability document.
        broker_unavailable_timeout: seconds an operation on the runtime's
            broker (a route's publish, a declare) waits for a connection while
            every node is down, then ``BrokerUnavailable`` (the routes' 503).
            The runtime's broker re-opens its connection from ``broker_url``
            after a loss (the next node of a multi-node URL): see
            :func:`relayna.transport.open_failover_broker`.
        dlq: where DLQ records live (the consumers' ``DLQStore`` config): the
            runtime then has a :class:`~relayna.dlq.DLQService` (``runtime.dlq``)
            that ``dlq_routes()`` and the execution graphs use; ``None`` (the
            default, as the original): no DLQ store.
        replica_acks: replicas that must hold the hub's status writes before
            their messages are acked (``None``: 1 on a Redis Cluster store, 0
            elsewhere; the same knob as ``App(replica_acks=)`` and the
            workers' ``--replica-acks``).
        replica_wait: seconds one wait may take before the batch is retried.
    """

    store_url: str
    broker_url: str | None = None
    topology: StatusTopologyBase | None = None
    declare: bool = True
    run_hub: bool = True
    store: StatusStoreConfig = attrs.field(factory=StatusStoreConfig)
    hub_prefetch: int = 200
    hub_offset: Any = None
    hub_name: str | None = None
    hub_persist_offset: bool = True
    hub_max_catch_up: float | None = None
    sanitize_meta_keys: frozenset[str] = attrs.field(
        default=frozenset({"auth_token"}), converter=_frozen_strs
    )
    state_key: str = "relayna"
    store_adapter: Literal["native", "coredis", "redis-py"] = "native"
    broker_adapter: Literal["native", "aiormq"] = "native"
    observations: ObservationStoreConfig | None = attrs.field(factory=ObservationStoreConfig)
    feed: ServiceEventFeedConfig | None = attrs.field(factory=ServiceEventFeedConfig)
    graph_max_children: int = 200
    heartbeat_prefix: str = "relayna"
    service_title: str = "relayna"
    dlq: DLQStoreConfig | None = None
    replica_acks: int | None = None
    replica_wait: float = 1.0
    broker_unavailable_timeout: float = 5.0


@attrs.define
class RelaynaRuntime:
    """Everything the routes need; lives for the app's life."""

    config: RuntimeConfig
    store: Store
    status: StatusStore
    broker: Broker | None = None
    hub: StatusHub | None = None
    shutdown_event: anyio.Event = attrs.field(factory=anyio.Event)
    stream_stats: StatusStreamStats = attrs.field(factory=StatusStreamStats)
    observations: ObservationStore | None = None
    feed: ServiceEventFeed | None = None
    graphs: ExecutionGraphService | None = None
    dlq: DLQService | None = None
    metrics: RelaynaMetrics = attrs.field(factory=RelaynaMetrics)

    @property
    def topology_kind(self) -> str:
        topology = self.config.topology
        return "unknown" if topology is None else topology_kind(topology)

    @property
    def status_queue(self) -> str | None:
        return None if self.config.topology is None else self.config.topology.status_queue

    @property
    def status_is_stream(self) -> bool:
        topology = self.config.topology
        return topology is not None and topology.status_consume_offset is not None

    def request_shutdown(self) -> None:
        """End every SSE stream (idempotent)."""
        self.shutdown_event.set()


def cluster_layout_everywhere(config: RuntimeConfig) -> RuntimeConfig:
    """``config`` with the Redis Cluster key layout on every store it configures
    when the status store has it (``store.cluster``: the one setting) or the
    store URL is a Redis Cluster's (which implies it)."""
    if not config.store.cluster:
        if not is_cluster_store_url(config.store_url):
            return config
        config = attrs.evolve(config, store=attrs.evolve(config.store, cluster=True))
    changes: dict[str, Any] = {}
    for name in ("observations", "feed", "dlq"):
        value = getattr(config, name)
        if value is not None and not value.cluster:
            changes[name] = attrs.evolve(value, cluster=True)
    return attrs.evolve(config, **changes) if changes else config


@asynccontextmanager
async def open_relayna_runtime(
    config: RuntimeConfig,
    *,
    shutdown_event: anyio.Event | None = None,
    broker: Broker | None = None,
    store: Store | None = None,
) -> AsyncIterator[RelaynaRuntime]:
    """Open store, broker and hub; yield the runtime; close everything on exit.

    Args:
        broker / store: already-open transports to use instead of opening
            ``config.broker_url`` / ``config.store_url`` (they stay open on
            exit: their owner closes them). This is how a worker and the app
            in one process share one ``memory://`` broker.

    Raises:
        TransportError: the store or broker could not be opened, or the hub
            could not start consuming (startup fails as a whole).
    """
    config = cluster_layout_everywhere(config)
    async with AsyncExitStack() as stack:
        if store is None:
            store = await stack.enter_async_context(
                open_store(config.store_url, adapter=config.store_adapter)
            )
        if broker is None and config.broker_url is not None:
            broker = await stack.enter_async_context(
                open_failover_broker(
                    config.broker_url,
                    adapter=config.broker_adapter,
                    unavailable_timeout=config.broker_unavailable_timeout,
                )
            )
        feed = ServiceEventFeed(store, config.feed) if config.feed is not None else None
        runtime = RelaynaRuntime(
            config=config,
            store=store,
            status=StatusStore(store, config.store, feed=feed),
            feed=feed,
            broker=broker,
            shutdown_event=shutdown_event or anyio.Event(),
        )
        runtime.metrics = RelaynaMetrics(service=config.service_title)
        runtime.metrics.track_streams(runtime.stream_stats)
        if config.observations is not None:
            runtime.observations = ObservationStore(store, config.observations)
        if config.dlq is not None:
            runtime.dlq = DLQService(DLQStore(store, config.dlq), broker, status=runtime.status)
        runtime.graphs = ExecutionGraphService(
            topology_kind=runtime.topology_kind,
            status=runtime.status,
            observations=runtime.observations,
            dlq=runtime.dlq,
            max_children=config.graph_max_children,
        )
        topology = config.topology
        if broker is not None and topology is not None and config.declare:
            await topology.plan().apply(broker)
        tg = await stack.enter_async_context(anyio.create_task_group())
        if broker is not None and topology is not None and config.run_hub:
            offset = config.hub_offset or topology.status_consume_offset
            runtime.hub = StatusHub(
                broker,
                runtime.status,
                StatusHubConfig(
                    queue=topology.status_queue,
                    offset=offset,
                    prefetch=config.hub_prefetch,
                    sanitize_meta_keys=config.sanitize_meta_keys,
                    name=config.hub_name,
                    persist_offset=config.hub_persist_offset,
                    max_catch_up=config.hub_max_catch_up,
                    replica_acks=config.replica_acks,
                    replica_wait=config.replica_wait,
                ),
                metrics=runtime.metrics,
                reconnect=_hub_reconnect(config, broker),
            )
            await tg.start(runtime.hub.run)
        try:
            yield runtime
        finally:
            runtime.request_shutdown()
            tg.cancel_scope.cancel()


def relayna_lifespan(
    config: RuntimeConfig,
    *,
    shutdown_event: anyio.Event | None = None,
    broker: Broker | None = None,
    store: Store | None = None,
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """A Starlette ``lifespan`` running the relayna runtime for the app's life.

    ``broker``/``store``: already-open transports to share (see
    :func:`open_relayna_runtime`).
    """

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        async with open_relayna_runtime(
            config, shutdown_event=shutdown_event, broker=broker, store=store
        ) as runtime:
            yield {config.state_key: runtime}

    return lifespan


def _hub_reconnect(
    config: RuntimeConfig, broker: Broker
) -> Callable[[], AbstractAsyncContextManager[Broker]] | None:
    """How the hub opens a connection of its own once the runtime's is lost: from
    the broker URL (a multi-node URL fails over to the next node). None when the
    runtime's broker fails over by itself (a :class:`FailoverBroker`: the hub
    retries on it), for the memory broker (it cannot be lost) or a broker
    passed in without a URL."""
    if isinstance(broker, FailoverBroker):
        return None
    return broker_opener(config.broker_url, config.broker_adapter)
