"""``ExecutionGraphService``: read the stores concurrently, build the graph.

The service depends on *reader protocols*, not on the status or DLQ packages
(which sit below observability): :class:`relayna.status.StatusStore`
satisfies :class:`StatusHistoryReader`, :class:`ObservationStore` satisfies
:class:`ObservationReader`, and the DLQ store satisfies
:class:`DLQRecordReader`.

All reads of one graph run in one task group with at most
``max_concurrency`` in flight. Children are capped at ``max_children``
(sorted ids; the cut is reported in the graph's ``annotations``), so a parent
with 100,000 children still answers in bounded time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import anyio

from relayna.contracts import validate_identifier
from relayna.observability._graph_build import TaskRecords, build_execution_graph
from relayna.observability._graph_model import ExecutionGraph

__all__ = [
    "DLQRecordReader",
    "ExecutionGraphService",
    "ObservationReader",
    "StatusHistoryReader",
]


@runtime_checkable
class StatusHistoryReader(Protocol):
    """Status history (newest first) and the children index of a task."""

    async def history(self, task_id: str, limit: int | None = None) -> list[dict[str, Any]]: ...

    async def children(self, parent_task_id: str, limit: int | None = None) -> list[str]: ...


@runtime_checkable
class ObservationReader(Protocol):
    """Persisted observations of a task (newest first)."""

    async def history(self, task_id: str, limit: int | None = None) -> list[dict[str, Any]]: ...


@runtime_checkable
class DLQRecordReader(Protocol):
    """Dead-letter records of a task (JSON-ready mappings, any order)."""

    async def records_for_task(self, task_id: str, limit: int) -> Sequence[Mapping[str, Any]]: ...


class ExecutionGraphService:
    """Builds :class:`ExecutionGraph` s from the stores.

    Args:
        topology_kind: the service's topology kind (``topology_kind(topology)``).
        status: status history + children reader (e.g. the ``StatusStore``).
        observations: observation reader; without one graphs are ``partial``.
        dlq: DLQ record reader (optional).
        max_children: children beyond this many (by sorted id) are left out.
        max_concurrency: store reads in flight at once for one graph.
        dlq_limit: DLQ records read per task.
    """

    def __init__(
        self,
        *,
        topology_kind: str,
        status: StatusHistoryReader | None = None,
        observations: ObservationReader | None = None,
        dlq: DLQRecordReader | None = None,
        max_children: int = 200,
        max_concurrency: int = 16,
        dlq_limit: int = 200,
    ) -> None:
        if max_children < 0 or max_concurrency < 1 or dlq_limit < 1:
            raise ValueError("max_children >= 0, max_concurrency >= 1 and dlq_limit >= 1")
        self.topology_kind = topology_kind
        self.status = status
        self.observations = observations
        self.dlq = dlq
        self.max_children = max_children
        self.max_concurrency = max_concurrency
        self.dlq_limit = dlq_limit

    async def _records(self, task_id: str, limiter: anyio.CapacityLimiter) -> TaskRecords:
        out: dict[str, Any] = {}

        async def read(name: str, call: Any) -> None:
            async with limiter:
                out[name] = await call

        async with anyio.create_task_group() as tg:
            if self.status is not None:
                tg.start_soon(read, "statuses", self.status.history(task_id))
            if self.observations is not None:
                tg.start_soon(read, "observations", self.observations.history(task_id))
            if self.dlq is not None:
                tg.start_soon(read, "dlq", self.dlq.records_for_task(task_id, self.dlq_limit))
        # the stores answer newest first; the builder breaks timestamp ties by input order
        return TaskRecords(
            task_id,
            statuses=out.get("statuses", [])[::-1],
            observations=out.get("observations", [])[::-1],
            dlq_records=list(out.get("dlq", [])),
        )

    async def get_graph(
        self,
        task_id: str,
        *,
        progress: Callable[[int, int], Awaitable[None]] | None = None,
    ) -> ExecutionGraph | None:
        """The task's graph, or None when no store knows anything about it.

        Args:
            progress: awaited as ``progress(done, total)`` once the children
                are known and as children's records are read, ``done`` never
                going down and the last call saying ``total`` (a caller
                reporting a long read, e.g. the MCP server's progress
                notifications). Cancelling the caller's scope stops the reads.

        Raises:
            ContractError: ``task_id`` fails the identifier rule.
            StoreError: a store failed.
        """
        validate_identifier(task_id)
        limiter = anyio.CapacityLimiter(self.max_concurrency)
        children_ids: list[str] = []
        root: list[TaskRecords] = []

        async def load_root() -> None:
            root.append(await self._records(task_id, limiter))

        async def load_children() -> None:
            if self.status is not None and self.max_children > 0:
                async with limiter:
                    ids = await self.status.children(task_id, limit=self.max_children + 1)
                children_ids.extend(ids)

        async with anyio.create_task_group() as tg:
            tg.start_soon(load_root)
            tg.start_soon(load_children)
        annotations: dict[str, Any] = {}
        if len(children_ids) > self.max_children:
            del children_ids[self.max_children :]
            annotations["children_truncated"] = True
            annotations["children_limit"] = self.max_children
        children: list[TaskRecords] = [TaskRecords("")] * len(children_ids)
        done = 0
        reported = -1
        report_lock = anyio.Lock()

        async def report() -> None:
            # children finish in any order: reports go out one at a time, never going back
            nonlocal reported
            if progress is None:
                return
            async with report_lock:
                if done > reported:
                    reported = done
                    await progress(done, len(children_ids))

        await report()

        async def load_child(index: int, child_id: str) -> None:
            nonlocal done
            children[index] = await self._records(child_id, limiter)
            done += 1
            await report()

        async with anyio.create_task_group() as tg:
            for index, child_id in enumerate(children_ids):
                tg.start_soon(load_child, index, child_id)
        records = root[0]
        if not (records.statuses or records.observations or records.dlq_records or children):
            return None
        return build_execution_graph(
            records, topology_kind=self.topology_kind, children=children, annotations=annotations
        )
