"""Topology builders and the real-stack runtime shared by the observability
integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from relayna.api import RelaynaRuntime, RuntimeConfig, open_relayna_runtime
from relayna.observability import ObservationStoreConfig, ServiceEventFeedConfig
from relayna.status import StatusStoreConfig
from relayna.topology import SharedTasksSharedStatusTopology, StatusTopologyBase


def shared_topology(name: str) -> SharedTasksSharedStatusTopology:
    """A shared-tasks topology with queues and exchanges named after ``name``."""
    return SharedTasksSharedStatusTopology(
        tasks_exchange=f"{name}.tasks",
        tasks_queue=f"{name}.tasks",
        tasks_routing_key="task",
        status_exchange=f"{name}.status",
        status_queue=f"{name}.status",
        status_use_streams=False,
    )


@asynccontextmanager
async def real_runtime(
    topology: StatusTopologyBase, amqp_url: str, redis_url: str, unique: str
) -> AsyncIterator[RelaynaRuntime]:
    """A runtime (status store, observations, feed, hub) on the real servers;
    the topology's queues (and their retry/DLQ queues) are deleted on exit."""
    config = RuntimeConfig(
        store_url=redis_url,
        broker_url=amqp_url,
        topology=topology,
        store=StatusStoreConfig(prefix=f"gs-{unique}"),
        observations=ObservationStoreConfig(prefix=f"go-{unique}"),
        feed=ServiceEventFeedConfig(prefix=f"gf-{unique}"),
    )
    async with open_relayna_runtime(config) as runtime:
        try:
            yield runtime
        finally:
            assert runtime.broker is not None
            with anyio.CancelScope(shield=True):
                for queue in topology.plan().queue_names:
                    for suffix in ("", ".retry", ".dlq"):
                        await runtime.broker.delete_queue(queue + suffix)
