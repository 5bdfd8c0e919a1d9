"""The demo topology and worker of ``relayna dev``.

The handler reports progress over a few seconds. ``payload.mode`` picks what
happens: ``ok``; ``fail_once`` (fails on the first attempt, succeeds on the
broker-delayed retry); ``handoff`` (hands the task to the ``demo.review`` task
type with a manual retry, keeping its task_id); ``fail_always`` (fails every
attempt and ends in the dead-letter queue with status ``failed``);
``fail_until_replayed`` (fails every attempt, is dead-lettered, and completes
once replayed from the DLQ); ``fanout`` (an aggregation fan-out: ``steps``
children, at most 5, queued on the parent's aggregation shard and run by the
aggregation consumer; the parent completes when the last child has, see
:mod:`._fanout`).

The handler publishes ``completed`` itself (the worker's lifecycle statuses
leave it out): a fan-out parent's handler returns once its children are
queued, and its ``completed`` comes from the aggregation of the last child.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from relayna.consumer import TaskContext
from relayna.contracts import TaskEnvelope
from relayna.contracts import headers as h
from relayna.devserver._fanout import fan_out
from relayna.topology import RoutedTasksSharedStatusShardedAggregationTopology

__all__ = ["DEMO_TASK_TYPES", "MODES", "check_demo_payload", "demo_handler", "demo_topology"]

DEMO_TASK_TYPES = ("demo.process", "demo.review")
MODES = ("ok", "fail_once", "handoff", "fail_always", "fail_until_replayed", "fanout")
MAX_CHILDREN = 5
#: Aggregation shards of the demo (one consumer owns them all).
SHARDS = 2


def demo_topology(prefix: str = "relayna.dev") -> RoutedTasksSharedStatusShardedAggregationTopology:
    return RoutedTasksSharedStatusShardedAggregationTopology(
        tasks_exchange=f"{prefix}.tasks",
        tasks_queue=f"{prefix}.tasks",
        task_types=DEMO_TASK_TYPES,
        status_exchange=f"{prefix}.status",
        status_queue=f"{prefix}.status",
        prefetch_count=8,
        shard_count=SHARDS,
        aggregation_queue_template=f"{prefix}.aggregation.{{shard}}",
        aggregation_queue_name_prefix=f"{prefix}.aggregation.shards",
    )


def check_demo_payload(
    payload: Mapping[str, Any], modes: tuple[str, ...] = MODES
) -> list[tuple[str, str]]:
    """What is wrong with a demo task's payload, as ``(path, message)`` pairs.

    ``mode`` is one of ``modes`` (default ``ok``), ``steps`` an integer
    1..20 (default 5), ``text`` a string; other keys are left to the handler.
    """
    errors: list[tuple[str, str]] = []
    mode = payload.get("mode", "ok")
    if mode not in modes:
        errors.append(("payload.mode", f"must be one of {', '.join(modes)}, got {mode!r}"))
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


async def demo_handler(
    task: TaskEnvelope,
    ctx: TaskContext,
    *,
    step_seconds: float = 0.4,
) -> dict[str, Any]:
    """The demo worker (see the module docs): publishes ``completed`` with the result."""
    payload = dict(task.payload)
    mode = payload.get("mode", "ok")
    steps = _steps(payload)
    text = str(payload.get("text", ""))
    parent = payload.get("parent_task_id")
    extra = {"parent_task_id": parent} if isinstance(parent, str) else {}
    if mode == "fanout":
        return {"children": await fan_out(task, ctx, min(steps, MAX_CHILDREN))}
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
    result = {"text": text.upper(), "steps": steps, "attempts": ctx.attempt + 1}
    await ctx.publish_status(status="completed", result=result, meta=extra)
    return result
