"""The demo topology and worker of ``relayna dev``.

The handler reports progress over a few seconds. ``payload.mode`` picks what
happens: ``ok``; ``fail_once`` (fails on the first attempt, succeeds on the
broker-delayed retry); ``handoff`` (hands the task to the ``demo.review`` task
type with a manual retry, keeping its task_id); ``fail_always`` (fails every
attempt and ends in the dead-letter queue with status ``failed``);
``fail_until_replayed`` (fails every attempt, is dead-lettered, and completes
once replayed from the DLQ); ``fanout`` (publishes ``steps`` child tasks, at
most 5, each with ``payload.parent_task_id``, which its statuses carry as
``meta.parent_task_id``, then waits for every child to finish: the parent's
execution graph gains its aggregation children while they run, and the parent
completes with their results, or fails when one of them failed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from relayna.consumer import TaskContext
from relayna.contracts import TaskEnvelope, TerminalStatusSet
from relayna.contracts import headers as h
from relayna.topology import RoutedTasksSharedStatusTopology

__all__ = ["DEMO_TASK_TYPES", "MODES", "check_demo_payload", "demo_handler", "demo_topology"]

DEMO_TASK_TYPES = ("demo.process", "demo.review")
MODES = ("ok", "fail_once", "handoff", "fail_always", "fail_until_replayed", "fanout")
MAX_CHILDREN = 5
#: How long a fan-out waits for its children before it fails.
CHILDREN_DEADLINE = 120.0

#: The latest status name of a task (None before its first status).
LatestStatus = Callable[[str], Awaitable[str | None]]
_TERMINAL = TerminalStatusSet()


def demo_topology(prefix: str = "relayna.dev") -> RoutedTasksSharedStatusTopology:
    return RoutedTasksSharedStatusTopology(
        tasks_exchange=f"{prefix}.tasks",
        tasks_queue=f"{prefix}.tasks",
        task_types=DEMO_TASK_TYPES,
        status_exchange=f"{prefix}.status",
        status_queue=f"{prefix}.status",
        prefetch_count=8,
    )


def check_demo_payload(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What is wrong with a demo task's payload, as ``(path, message)`` pairs.

    ``mode`` is one of :data:`MODES` (default ``ok``), ``steps`` an integer
    1..20 (default 5), ``text`` a string; other keys are left to the handler.
    """
    errors: list[tuple[str, str]] = []
    mode = payload.get("mode", "ok")
    if mode not in MODES:
        errors.append(("payload.mode", f"must be one of {', '.join(MODES)}, got {mode!r}"))
    steps = payload.get("steps", 5)
    if type(steps) is not int or not 1 <= steps <= 20:
        errors.append(("payload.steps", f"must be an integer 1..20, got {steps!r}"))
    if not isinstance(payload.get("text", ""), str):
        errors.append(("payload.text", "must be a string"))
    return errors


def _steps(payload: dict[str, Any]) -> int:
    try:
        steps = int(payload.get("steps", 5))
    except (TypeError, ValueError):
        steps = 5
    return min(max(steps, 1), 20)


def _fails(mode: str, ctx: TaskContext) -> bool:
    if mode == "fail_always":
        return True
    if mode == "fail_once":
        return ctx.attempt == 0
    if mode == "fail_until_replayed":
        return not ctx.headers.get(h.REPLAYED_FROM_DLQ)
    return False


async def _fan_out(
    task: TaskEnvelope, ctx: TaskContext, count: int, latest: LatestStatus | None
) -> dict[str, Any]:
    """Publish ``count`` children (ids ``{task_id}.{n}``) that report to this task,
    then (with ``latest``) wait for each to finish, reporting as they do."""
    children = []
    for n in range(1, count + 1):
        child = await ctx.client.publish_task(
            {
                "task_id": f"{task.task_id}.{n}",
                "task_type": "demo.process",
                "correlation_id": task.task_id,
                "payload": {
                    "mode": "ok",
                    "steps": 2,
                    "text": f"part {n}",
                    "parent_task_id": task.task_id,
                },
            }
        )
        children.append(child.task_id)
        await ctx.publish_status(
            status="running",
            message=f"fan-out: published child {n}/{count}",
            meta={"progress": n / (2 * count), "child_task_id": child.task_id},
        )
    if latest is None:
        return {"children": children}
    outcomes: dict[str, str] = {}
    with anyio.fail_after(CHILDREN_DEADLINE):
        while len(outcomes) < count:
            for child_id in children:
                status = None if child_id in outcomes else await latest(child_id)
                if _TERMINAL.is_terminal(status):
                    assert status is not None
                    outcomes[child_id] = status
                    await ctx.publish_status(
                        status="running",
                        message=f"fan-out: {child_id} {status} ({len(outcomes)}/{count})",
                        meta={"progress": 0.5 + len(outcomes) / (2 * count)},
                    )
            if len(outcomes) < count:
                await anyio.sleep(0.1)
    failed = sorted(c for c, status in outcomes.items() if status != "completed")
    if failed:
        raise RuntimeError(f"fan-out: children failed: {', '.join(failed)}")
    return {"children": children}


async def demo_handler(
    task: TaskEnvelope,
    ctx: TaskContext,
    *,
    step_seconds: float = 0.4,
    latest: LatestStatus | None = None,
) -> dict[str, Any]:
    """The demo worker (see the module docs); ``latest`` lets a fan-out wait for its children."""
    payload = dict(task.payload)
    mode = payload.get("mode", "ok")
    steps = _steps(payload)
    text = str(payload.get("text", ""))
    parent = payload.get("parent_task_id")
    extra = {"parent_task_id": parent} if isinstance(parent, str) else {}
    if mode == "fanout":
        return await _fan_out(task, ctx, min(steps, MAX_CHILDREN), latest)
    if task.task_type == "demo.process" and mode == "handoff":
        await ctx.publish_status(
            status="running", message="needs a review: handing off", meta={"progress": 0.2}
        )
        ctx.manual_retry(task_type="demo.review", reason="needs review")
    for step in range(1, steps + 1):
        await anyio.sleep(step_seconds)
        if step == (steps + 1) // 2 and _fails(mode, ctx):
            raise RuntimeError(f"demo failure at step {step} (attempt {ctx.attempt + 1})")
        await ctx.publish_status(
            status="running",
            message=f"{task.task_type}: step {step}/{steps}",
            meta={"progress": step / steps, "attempt": ctx.attempt + 1, **extra},
        )
    return {"text": text.upper(), "steps": steps, "attempts": ctx.attempt + 1}
