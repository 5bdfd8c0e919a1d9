"""Handler and topology for the subprocess worker test (configured by environment)."""

from __future__ import annotations

import os

import anyio

from relayna.consumer import TaskContext
from relayna.contracts import TaskEnvelope
from relayna.topology import SharedTasksSharedStatusTopology

_unique = os.environ.get("RELAYNA_TEST_WORKER_UNIQUE", "x")

topology = SharedTasksSharedStatusTopology(
    tasks_exchange=f"it-tasks-{_unique}",
    tasks_queue=f"it-tasks-{_unique}",
    tasks_routing_key="task",
    status_exchange=f"it-status-{_unique}",
    status_queue=f"it-status-{_unique}",
    status_use_streams=False,
)


async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
    await ctx.publish_status(status="started")
    await anyio.sleep(float(task.payload.get("sleep", 1.0)))
    await ctx.publish_status(status="done")


async def failing_handler(task: TaskEnvelope, ctx: TaskContext) -> None:
    raise RuntimeError(f"cannot handle {task.task_id}")
