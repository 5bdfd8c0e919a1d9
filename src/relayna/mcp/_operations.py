"""What the operational MCP tools do: each one calls the path its HTTP route calls.

The server (:mod:`relayna.mcp._server`) checks size, schema, identifiers,
enablement and the token first, and audits every call; these functions only
act and say what they did. A refusal is a :class:`~relayna.errors.RelaynaError`
(the server turns it into an ``isError`` result).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from relayna.api import RelaynaRuntime
from relayna.contracts import TaskEnvelope
from relayna.dlq import ManualRetry
from relayna.errors import (
    ConfigurationError,
    ContractError,
    WorkflowConflict,
    WorkflowRunNotFound,
)
from relayna.mcp import _reads as reads
from relayna.rabbitmq import CancelStore, cancel_task
from relayna.topology import SharedStatusWorkflowTopology
from relayna.workflow import WorkflowRuns, WorkflowStoreConfig

__all__ = ["Publish", "cancel", "operate"]

#: Publishes a task mapping with confirm (``RelaynaClient.publish_task``).
Publish = Callable[[dict[str, Any]], Awaitable[TaskEnvelope]]


async def cancel(
    runtime: RelaynaRuntime, args: dict[str, Any], workflow: WorkflowStoreConfig | None = None
) -> dict[str, Any]:
    """``cancel_task``: the path of ``POST /tasks/{task_id}/cancel`` (``client.cancel``),
    or with ``workflow: true`` that of ``POST /workflow/runs/{task_id}/cancel``.

    Answers ``{task_id, state, reason, status}`` with ``state`` ``requested``,
    ``pending`` or ``terminal`` (the route's 409: the task or run already ended
    with ``status``; nothing changed — a result, not an error, since a second
    cancel of a finished task is the expected idempotent case).

    Raises:
        ContractError: no such task or run (the route's 404), a bad reason, or
            ``batch`` and ``workflow`` together.
        ConfigurationError: the runtime has no broker (the route's 503), or
            ``workflow`` without a workflow topology.
    """
    if runtime.broker is None:
        raise ConfigurationError("cancellation needs the runtime's broker")
    batch = bool(args.get("batch", False))
    cancels = CancelStore(
        runtime.store, prefix=runtime.status.config.prefix, cluster=runtime.status.config.cluster
    )
    if args.get("workflow", False):
        if batch:
            raise ContractError("batch and workflow cannot be combined", reason="invalid_request")
        return await _cancel_run(runtime, cancels, args, workflow)
    result = await cancel_task(
        runtime.broker, cancels, args["task_id"], args.get("reason"), require_known=not batch
    )
    if result.state == "unknown":
        raise ContractError(
            f"no task {args['task_id']!r} (no publish, no status)", reason="unknown"
        )
    return result.as_dict()


async def _cancel_run(
    runtime: RelaynaRuntime,
    cancels: CancelStore,
    args: dict[str, Any],
    workflow: WorkflowStoreConfig | None,
) -> dict[str, Any]:
    topology = runtime.config.topology
    if not isinstance(topology, SharedStatusWorkflowTopology):
        raise ConfigurationError("this service has no workflow topology")
    runs = WorkflowRuns(
        runtime.store, topology, broker=runtime.broker, config=workflow, cancels=cancels
    )
    task_id = args["task_id"]
    try:
        result = await runs.cancel(task_id, args.get("reason"))
    except WorkflowRunNotFound:
        raise ContractError(f"no workflow run for task {task_id!r}", reason="unknown") from None
    except WorkflowConflict as exc:
        return {"task_id": task_id, "state": "terminal", "reason": None,
                "status": exc.status or "completed"}  # fmt: skip
    return result.as_dict()


async def operate(
    runtime: RelaynaRuntime,
    name: str,
    args: dict[str, Any],
    *,
    publish: Publish | None,
    workflow: WorkflowStoreConfig | None,
    caller: str,
) -> dict[str, Any]:
    """Run operational tool ``name`` with checked ``args``; ``caller`` is the audited who."""
    if name == "cancel_task":
        return await cancel(runtime, args, workflow)
    if name == "publish_task":
        assert publish is not None  # the server offers the tool only then
        task = {k: v for k, v in args.items() if k != "payload"}
        task["payload"] = args.get("payload", {})
        task.setdefault("task_id", os.urandom(16).hex())
        envelope = await publish(task)
        return {"task_id": envelope.task_id, "task_type": envelope.task_type, "published": True}
    if name == "replay_workflow_stage":
        runs = reads.workflow_runs(runtime, workflow)
        result = await runs.replay_stage(
            args["task_id"],
            args["stage"],
            args.get("payload"),
            reason=args.get("reason", "replay"),
            force=args.get("force", False),
        )
        return result.to_dict()
    dlq = reads.dlq_service(runtime)
    if name == "replay_dlq_message":
        replayed = await dlq.replay(
            args["dlq_id"], force=args.get("force", False), direct=args.get("direct", False)
        )
        if replayed is None:
            raise ContractError(f"no DLQ record {args['dlq_id']!r}")
        return replayed.as_dict()
    # retry_failed_task
    dlq_id = args.get("dlq_id")
    if dlq_id is None:
        records = await dlq.records_for_task(args["task_id"], 1)
        if not records:
            raise ContractError(f"task {args['task_id']!r} has no dead letter to retry")
        dlq_id = records[0]["dlq_id"]
    retried = await dlq.retry_failed_task(
        dlq_id, ManualRetry(force=args.get("force", False), retried_by=caller)
    )
    if retried is None:
        raise ContractError(f"no DLQ record {dlq_id!r}")
    return retried.as_dict()
