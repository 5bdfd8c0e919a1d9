"""``relayna cancel TASK_ID``: cancel a queued, retrying or running task from a terminal.

Writes the cancellation marker in the store (``--store-url``) and sends the
control message through the broker (``--broker-url``), as ``client.cancel``
does. ``--workflow`` names a workflow run's task id: the run state must
exist (else "unknown") and records the cancel too (as
``POST /workflow/runs/{task_id}/cancel``). Exit codes: 0 the cancel is
recorded (or was already), 1 the task or run already ended or is unknown (or
a transport failed), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from relayna.cli._common import (
    Subcommands,
    UsageError,
    add_backend_arg,
    add_cluster_keys_arg,
    cluster_keys,
    env_default,
    run_async,
)


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "cancel",
        help="cancel a task (queued, waiting for a retry, or running)",
        description=(
            "Cancel TASK_ID: a worker that takes it acks it without running it; a worker "
            "running it cancels its handler. Its status becomes 'cancelled'. A task that "
            "already ended is left as it is (exit 1)."
        ),
    )
    p.add_argument("task_id", metavar="TASK_ID", help="the task id (or, with --batch, a batch id)")
    p.add_argument(
        "--reason", default=None, help="why (at most 500 characters; default 'cancelled')"
    )
    p.add_argument("--batch", action="store_true", help="TASK_ID is a batch id: cancel every item")
    p.add_argument(
        "--workflow",
        action="store_true",
        help="TASK_ID is a workflow run: no stage is entered any more, a running stage is "
        "cancelled, and the run state says cancelled",
    )
    p.add_argument(
        "--workflow-prefix",
        default="relayna",
        help="with --workflow: the stage workers' state key prefix (default relayna)",
    )
    p.add_argument(
        "--store-url",
        default=env_default("RELAYNA_STORE_URL"),
        help="redis://, rediss:// or unix:// store of the statuses (env RELAYNA_STORE_URL)",
    )
    p.add_argument(
        "--broker-url",
        default=env_default("RELAYNA_BROKER_URL"),
        help="amqp:// or amqps:// broker of the workers (env RELAYNA_BROKER_URL)",
    )
    p.add_argument("--prefix", default="relayna", help="status key prefix (default relayna)")
    add_cluster_keys_arg(p)
    p.add_argument(
        "--control-exchange",
        default="relayna.control",
        help="the workers' control exchange (default relayna.control)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_backend_arg(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from relayna.contracts import is_valid_identifier

    if not args.store_url:
        raise UsageError("--store-url (or RELAYNA_STORE_URL) is required")
    if not args.broker_url:
        raise UsageError("--broker-url (or RELAYNA_BROKER_URL) is required")
    if not is_valid_identifier(args.task_id):
        raise UsageError(f"invalid task id {args.task_id!r}")
    if args.workflow and args.batch:
        raise UsageError("--workflow and --batch exclude each other")
    found: list[Any] = []

    async def main() -> None:
        from relayna.errors import ContractError
        from relayna.rabbitmq import CancelStore, cancel_task
        from relayna.transport import open_broker, open_store

        async with open_store(args.store_url) as store, open_broker(args.broker_url) as broker:
            cancels = CancelStore(
                store,
                prefix=args.prefix,
                control_exchange=args.control_exchange,
                cluster=cluster_keys(args),
            )
            try:
                cancels.check_reason(args.reason)
            except ContractError as exc:
                raise UsageError(str(exc)) from None
            if args.workflow:
                found.append(await _cancel_run(broker, store, cancels, args))
            else:
                found.append(
                    await cancel_task(
                        broker, cancels, args.task_id, args.reason, require_known=not args.batch
                    )
                )

    code = run_async(main, args.backend)
    if code != 0 or not found:
        return code or 1
    result = found[0]
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    elif result.accepted:
        print(f"{result.task_id}: cancel {result.state} ({result.reason})")
    if result.state == "terminal":
        print(f"relayna: task {result.task_id} already ended: {result.status}", file=sys.stderr)
    elif result.state == "unknown":
        print(f"relayna: no task {result.task_id}", file=sys.stderr)
    return 0 if result.accepted else 1


async def _cancel_run(broker: Any, store: Any, cancels: Any, args: argparse.Namespace) -> Any:
    """:func:`~relayna.workflow.cancel_run`, its refusals as a ``CancelResult``."""
    from relayna.errors import WorkflowConflict, WorkflowRunNotFound
    from relayna.rabbitmq import CancelResult
    from relayna.workflow import WorkflowStore, WorkflowStoreConfig, cancel_run

    workflow = WorkflowStore(
        store, WorkflowStoreConfig(prefix=args.workflow_prefix, cluster=cluster_keys(args))
    )
    try:
        return await cancel_run(broker, cancels, workflow, args.task_id, args.reason)
    except WorkflowRunNotFound:
        return CancelResult(args.task_id, "unknown")
    except WorkflowConflict as exc:
        return CancelResult(args.task_id, "terminal", status=exc.status)
