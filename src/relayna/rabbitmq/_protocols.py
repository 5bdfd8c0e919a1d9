"""What the client and the consumers need from a topology, as Protocols.

The topology classes in :mod:`relayna.topology` satisfy these structurally;
the client only depends on the shapes, so a user-defined topology works too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from relayna.topology import WorkflowEntryRoute, WorkflowStage
from relayna.transport import Broker

__all__ = [
    "AggregationTopology",
    "Plan",
    "StatusTopology",
    "TaskTopology",
    "WorkflowTopology",
]


class Plan(Protocol):
    """A declaration plan (see :class:`relayna.topology.DeclarationPlan`)."""

    async def apply(self, broker: Broker) -> Any: ...


@runtime_checkable
class StatusTopology(Protocol):
    @property
    def status_exchange(self) -> str: ...
    @property
    def status_queue(self) -> str: ...
    @property
    def prefetch_count(self) -> int: ...

    def plan(self) -> Plan: ...
    def status_routing_key(self, task_id: str | None) -> str: ...
    def max_priority_for(self, queue: str) -> int | None: ...
    def retry_plan(
        self, source_queue: str, delay_ms: int, *, retry_suffix: str = ..., dlq_suffix: str = ...
    ) -> Plan: ...


@runtime_checkable
class TaskTopology(StatusTopology, Protocol):
    @property
    def tasks_exchange(self) -> str: ...
    @property
    def tasks_queue(self) -> str: ...

    def task_routing_key(
        self, task_type: str | None = None, task_id: str | None = None, *, known_only: bool = ...
    ) -> str: ...
    def task_binding_keys(self) -> tuple[str, ...]: ...


@runtime_checkable
class AggregationTopology(StatusTopology, Protocol):
    @property
    def shard_count(self) -> int: ...

    def shard_for(self, parent_task_id: str | None) -> int: ...
    def aggregation_routing_key(self, parent_task_id: str | None) -> str: ...
    def aggregation_queue_name(
        self, shards: Iterable[int], *, queue_name: str | None = None
    ) -> str: ...
    def aggregation_queue_plan(
        self, shards: Iterable[int], *, queue_name: str | None = None
    ) -> Plan: ...


@runtime_checkable
class WorkflowTopology(StatusTopology, Protocol):
    @property
    def workflow_exchange(self) -> str: ...
    @property
    def stages(self) -> tuple[Any, ...]: ...
    @property
    def entry_routes(self) -> tuple[Any, ...]: ...

    def stage(self, name: str) -> WorkflowStage:
        """The stage called ``name``; raises TopologyError for an unknown stage."""
        ...

    def entry_route(self, name: str) -> WorkflowEntryRoute:
        """The entry route called ``name``; raises TopologyError for an unknown route."""
        ...
