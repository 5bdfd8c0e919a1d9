"""The demo's two-stage workflow: ``planner`` → ``worker``, on relayna's workflow runtime.

A task of type ``demo.workflow`` (``POST /tasks``) enters the ``planner``
stage with the action ``plan``; the planner splits the text into parts and
hands them to the ``worker`` stage (action ``work``, its payload checked
against the stage contract on both sides), which works through them and
publishes ``completed``. Both stages share the demo's status exchange and
status queue, so the status hub, the SSE routes and the execution graph
(stage attempts, the ``stage_transitioned_to`` edge) see the workflow like
any other task. ``mode: fail_once`` fails the worker's first attempt: the
graph gains a stage retry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from anyio.abc import TaskStatus

from relayna.api import RelaynaRuntime
from relayna.consumer import RetryPolicy, TaskContext
from relayna.contracts import TaskEnvelope, WorkflowEnvelope
from relayna.devserver._demo import check_demo_payload
from relayna.errors import DuplicateTaskError
from relayna.observability import make_observation_sink
from relayna.rabbitmq import RelaynaClient, TaskIds
from relayna.topology import (
    ActionSchema,
    PayloadSchema,
    SharedStatusWorkflowTopology,
    WorkflowStage,
)
from relayna.workflow import WorkflowContext, WorkflowWorkerRuntime

__all__ = [
    "WORKFLOW_MODES",
    "WORKFLOW_TASK_TYPE",
    "check_workflow_payload",
    "demo_workflow_topology",
    "run_demo_workflow",
    "workflow_publisher",
]

WORKFLOW_TASK_TYPE = "demo.workflow"
WORKFLOW_MODES = ("ok", "fail_once")
ENTRY_STAGE = "planner"

_PLAN_FIELDS = ("text", "steps", "mode")
_PLAN = ActionSchema(
    action="plan", payload=PayloadSchema(name="plan", optional_fields=_PLAN_FIELDS)
)
_WORK = ActionSchema(
    action="work",
    payload=PayloadSchema(
        name="work", required_fields=("parts", "steps"), optional_fields=("mode",)
    ),
)


def demo_workflow_topology(prefix: str = "relayna.dev") -> SharedStatusWorkflowTopology:
    """The two stages, on ``{prefix}.workflow``, sharing the demo's status exchange and queue."""
    return SharedStatusWorkflowTopology(
        workflow_exchange=f"{prefix}.workflow",
        status_exchange=f"{prefix}.status",
        status_queue=f"{prefix}.status",
        stages=(
            WorkflowStage(
                ENTRY_STAGE,
                f"{prefix}.workflow.planner",
                ("planner.in",),
                "planner.in",
                description="splits the text into parts",
                accepted_actions=(_PLAN,),
                produced_actions=(_WORK,),
                allowed_next_stages=("worker",),
                timeout_seconds=60,
            ),
            WorkflowStage(
                "worker",
                f"{prefix}.workflow.worker",
                ("worker.in",),
                "worker.in",
                description="works through the parts",
                accepted_actions=(_WORK,),
                terminal=True,
                timeout_seconds=60,
            ),
        ),
    )


def check_workflow_payload(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What is wrong with a ``demo.workflow`` payload, as ``(path, message)`` pairs:
    ``mode`` one of :data:`WORKFLOW_MODES`, ``steps`` 1..20, ``text`` a string,
    nothing else (the planner's contract)."""
    errors = check_demo_payload(payload, WORKFLOW_MODES)
    errors += [(f"payload.{k}", "unknown field") for k in sorted(set(payload) - set(_PLAN_FIELDS))]
    return errors


async def _plan(message: WorkflowEnvelope, ctx: WorkflowContext, *, step_seconds: float) -> None:
    payload = dict(message.payload)
    steps = int(payload.get("steps", 3))
    words = str(payload.get("text", "")).split() or ["demo"]
    await ctx.publish_status(
        status="running", message="planner: planning", meta={"progress": 0.1, "stage": ctx.stage}
    )
    await anyio.sleep(step_seconds)
    work = {"parts": words, "steps": steps, "mode": payload.get("mode", "ok")}
    await ctx.publish_to_stage("worker", work, action="work")
    await ctx.publish_status(
        status="running",
        message=f"planner: {len(words)} part(s) handed to the worker",
        meta={"progress": 0.3, "stage": ctx.stage},
    )


async def _work(message: WorkflowEnvelope, ctx: WorkflowContext, *, step_seconds: float) -> None:
    payload = dict(message.payload)
    steps = int(payload["steps"])
    for step in range(1, steps + 1):
        await anyio.sleep(step_seconds)
        if step == (steps + 1) // 2 and payload.get("mode") == "fail_once" and ctx.attempt == 0:
            raise RuntimeError(f"demo failure in the worker stage at step {step}")
        await ctx.publish_status(
            status="running",
            message=f"worker: step {step}/{steps}",
            meta={"progress": 0.3 + 0.7 * step / steps, "stage": ctx.stage},
        )
    parts = [str(p).upper() for p in payload["parts"]]
    await ctx.publish_status(
        status="completed",
        message="worker: done",
        result={"parts": parts, "attempts": ctx.attempt + 1},
        meta={"stage": ctx.stage},
    )


async def run_demo_workflow(
    runtime: RelaynaRuntime,
    *,
    topology: SharedStatusWorkflowTopology,
    step_seconds: float,
    retry_policy: RetryPolicy,
    drain_timeout: float,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Both stages' consumers on the runtime's broker and store, writing observations
    where the runtime's execution graphs read them; reports ready once both consume."""
    assert runtime.broker is not None

    async def plan(message: WorkflowEnvelope, ctx: TaskContext) -> None:
        assert isinstance(ctx, WorkflowContext)  # a workflow consumer's context
        await _plan(message, ctx, step_seconds=step_seconds)

    async def work(message: WorkflowEnvelope, ctx: TaskContext) -> None:
        assert isinstance(ctx, WorkflowContext)
        await _work(message, ctx, step_seconds=step_seconds)

    options: dict[str, Any] = {"retry_policy": retry_policy, "drain_timeout": drain_timeout}
    if runtime.observations is not None:
        options["observation_sink"] = make_observation_sink(runtime.observations, runtime.feed)
    if runtime.dlq is not None:
        options["dlq_recorder"] = runtime.dlq.store
    workers = WorkflowWorkerRuntime(
        topology=topology,
        broker=runtime.broker,
        store=runtime.store,
        handlers={ENTRY_STAGE: plan, "worker": work},
        options=options,
        consumer_name="relayna-dev-workflow",
    )
    await workers.run(task_status=task_status)


def workflow_publisher(
    client: RelaynaClient, task_ids: TaskIds
) -> Callable[[dict[str, Any]], Awaitable[TaskEnvelope]]:
    """``POST /tasks`` for ``demo.workflow``: the task enters the planner stage
    (action ``plan``). The id is claimed first, as ``publish_task(if_exists="error")``
    does: :class:`DuplicateTaskError` when it exists; released when the publish fails."""

    async def publish(task: dict[str, Any]) -> TaskEnvelope:
        task_id = task["task_id"]
        token = await task_ids.claim(task_id)
        if token is None:
            raise DuplicateTaskError(task_id)
        message = {"task_id": task_id, "action": "plan", "payload": task["payload"]}
        if task.get("correlation_id") is not None:
            message["correlation_id"] = task["correlation_id"]
        try:
            await client.publish_to_stage(message, ENTRY_STAGE)
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await task_ids.release(task_id, token)
            raise
        return TaskEnvelope(task_id=task_id, task_type=WORKFLOW_TASK_TYPE, payload=task["payload"])

    return publish
