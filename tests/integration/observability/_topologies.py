"""Topology builders shared by the observability integration tests."""

from __future__ import annotations

from relayna.topology import SharedTasksSharedStatusTopology


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
