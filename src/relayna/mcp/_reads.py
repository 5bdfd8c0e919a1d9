"""The read side: what the read tools and the resources answer, from the runtime's stores.

Each function takes the open :class:`~relayna.api.RelaynaRuntime` and checked
arguments and returns JSON-ready data (the shapes of the HTTP routes where
one exists). Missing parts of the runtime (no DLQ store, no graphs) raise
:class:`~relayna.errors.ConfigurationError` with a sentence a user can act on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from relayna.api import RelaynaRuntime, worker_health_document
from relayna.dlq import MAX_LIMIT, Cursor, DLQQuery, DLQService
from relayna.errors import ConfigurationError
from relayna.mcp._explain import TERMINAL_STATUSES, explain
from relayna.observability import execution_graph_mermaid
from relayna.topology import SharedStatusWorkflowTopology, summarize_topology
from relayna.workflow import WorkflowRuns, WorkflowStoreConfig

__all__ = [
    "Progress",
    "dlq_message",
    "dlq_queues",
    "dlq_service",
    "explain_task",
    "graph",
    "history",
    "search_dlq",
    "status",
    "topology",
    "wait_for_task",
    "workers",
    "workflow_runs",
]

#: ``progress(done, total, message)``: reports a long read to the client.
Progress = Callable[[float, float | None, str | None], Awaitable[None]]


def dlq_service(runtime: RelaynaRuntime) -> DLQService:
    if runtime.dlq is None:
        raise ConfigurationError("this service keeps no DLQ records (RuntimeConfig(dlq=...))")
    return runtime.dlq


def workflow_runs(
    runtime: RelaynaRuntime, config: WorkflowStoreConfig | None = None
) -> WorkflowRuns:
    """Run state and replay of the runtime's workflow topology."""
    topology = runtime.config.topology
    if not isinstance(topology, SharedStatusWorkflowTopology):
        raise ConfigurationError("this service has no workflow topology")
    return WorkflowRuns(runtime.store, topology, broker=runtime.broker, config=config)


async def status(runtime: RelaynaRuntime, task_id: str) -> dict[str, Any]:
    event = await runtime.status.latest(task_id)
    return {"task_id": task_id, "found": event is not None, "event": event}


async def history(runtime: RelaynaRuntime, task_id: str, limit: int = 100) -> dict[str, Any]:
    events = (await runtime.status.history(task_id, limit))[::-1]  # the store answers newest first
    return {"task_id": task_id, "count": len(events), "events": events}


async def graph(
    runtime: RelaynaRuntime, task_id: str, *, fmt: str = "json", progress: Progress | None = None
) -> dict[str, Any]:
    if runtime.graphs is None:
        raise ConfigurationError("this service builds no execution graphs")

    async def report(done: int, total: int) -> None:
        if progress is not None:
            await progress(done, total, f"read {done} of {total} child tasks")

    result = await runtime.graphs.get_graph(task_id, progress=report)
    out: dict[str, Any] = {"task_id": task_id, "found": result is not None, "graph": None}
    if result is not None and fmt == "mermaid":
        out["mermaid"] = execution_graph_mermaid(result)
    elif result is not None:
        out["graph"] = result.to_dict()
    return out


async def explain_task(
    runtime: RelaynaRuntime, task_id: str, *, progress: Progress | None = None
) -> dict[str, Any]:
    """Status history, DLQ records and the graph, read concurrently, then :func:`explain`."""
    facts: dict[str, Any] = {"dead_letters": [], "graph": None}

    async def read_history() -> None:
        facts["history"] = (await runtime.status.history(task_id))[::-1]

    async def read_dlq() -> None:
        if runtime.dlq is None:
            return
        letters = await runtime.dlq.records_for_task(task_id, 20)
        if letters:  # listings read no bodies: whether the newest payload was kept needs the record
            record = await runtime.dlq.store.get(letters[0]["dlq_id"])
            letters[0]["payload_available"] = record is not None and record.payload_available
        facts["dead_letters"] = letters

    async def read_graph() -> None:
        if runtime.graphs is not None:
            facts["graph"] = (await graph(runtime, task_id, progress=progress))["graph"]

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_history)
        tg.start_soon(read_dlq)
        tg.start_soon(read_graph)
    return explain(task_id, facts["history"], facts["dead_letters"], facts["graph"])


async def wait_for_task(
    runtime: RelaynaRuntime,
    task_id: str,
    *,
    wait_seconds: float,
    poll_interval: float,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Poll the latest status until it is terminal or ``timeout`` passes.

    Each new status is reported as progress (``done`` counts statuses seen).
    Cancellation (the client's ``notifications/cancelled``) ends the wait at
    the next checkpoint.
    """
    seen: Any = None
    count = 0
    with anyio.move_on_after(wait_seconds):
        while True:
            event = await runtime.status.latest(task_id)
            if event is not None and event != seen:
                seen = event
                count += 1
                if progress is not None:
                    await progress(count, None, f"status {event.get('status')!r}")
                if event.get("status") in TERMINAL_STATUSES:
                    return {"task_id": task_id, "terminal": True, "event": event}
            await anyio.sleep(poll_interval)
    return {"task_id": task_id, "terminal": False, "event": seen}


async def search_dlq(runtime: RelaynaRuntime, arguments: dict[str, Any]) -> dict[str, Any]:
    filters = {
        k: arguments[k] for k in ("queue_name", "task_id", "reason", "state") if k in arguments
    }
    query = DLQQuery(**filters)
    cursor = Cursor.parse(arguments["cursor"]) if "cursor" in arguments else None
    limit = min(int(arguments.get("limit", 50)), MAX_LIMIT)
    return await dlq_service(runtime).list_messages(query, cursor=cursor, limit=limit)


async def dlq_queues(runtime: RelaynaRuntime) -> dict[str, Any]:
    return {"queues": await dlq_service(runtime).queue_summaries()}


async def dlq_message(runtime: RelaynaRuntime, dlq_id: str) -> dict[str, Any] | None:
    return await dlq_service(runtime).message_detail(dlq_id)


async def workers(runtime: RelaynaRuntime) -> dict[str, Any]:
    return await worker_health_document(runtime)


def topology(runtime: RelaynaRuntime) -> dict[str, Any]:
    current = runtime.config.topology
    return {"topology": None if current is None else summarize_topology(current)}
