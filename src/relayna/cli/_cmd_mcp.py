"""``relayna mcp --app module:attr``: the MCP server over stdio, for desktop MCP clients.

The target is a :class:`relayna.App` or a :class:`relayna.api.RuntimeConfig`.
The server reads the stores the service writes; it runs no status hub (the
service's own process does) and declares nothing. Logs go to stderr: stdout
carries the protocol.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs

from relayna._urls import redact_url
from relayna.api import RelaynaRuntime, RuntimeConfig, open_relayna_runtime
from relayna.app import App
from relayna.cli._common import (
    Subcommands,
    UsageError,
    add_backend_arg,
    add_cluster_keys_arg,
    add_logging_args,
    cluster_keys,
    load_target,
    run_async,
)
from relayna.contracts import TaskEnvelope
from relayna.transport import is_cluster_store_url

log = logging.getLogger("relayna.mcp")


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "mcp",
        help="serve the Model Context Protocol over stdio (for desktop MCP clients)",
        description=(
            "Serve relayna's MCP tools, resources and prompts over stdin/stdout for one client "
            "session, reading the stores of the service TARGET describes. Needs the mcp extra: "
            "pip install 'relayna[mcp]'."
        ),
    )
    p.add_argument(
        "--app",
        required=True,
        metavar="TARGET",
        help="a relayna.App or a relayna.api.RuntimeConfig, as module:attr",
    )
    p.add_argument(
        "--allow-operations",
        action="store_true",
        help="offer the operational tools (publish_task, replay_dlq_message, "
        "retry_failed_task, cancel_task, replay_workflow_stage): they act for real; off by default. Over stdio the user "
        "who launched the server is the caller, so no token is asked; every call is audited",
    )
    p.add_argument(
        "--workflow-prefix",
        default="relayna",
        metavar="PREFIX",
        help="the key prefix the workflow stage workers keep run state under "
        "(WorkflowStoreConfig.prefix; default: relayna), for relayna://workflow/runs/{task_id} "
        "and replay_workflow_stage on a workflow topology",
    )
    add_cluster_keys_arg(p)
    add_backend_arg(p)
    add_logging_args(p)
    p.set_defaults(handler=_run)


def _with_layout(target: Any, args: argparse.Namespace) -> Any:
    """``target`` with the key layout ``--cluster-keys`` / RELAYNA_STORE_CLUSTER_KEYS
    chose (an App reads the env itself); a cluster store URL implies the
    cluster layout, and the default layout chosen for one is an error."""
    if isinstance(target, App):
        if args.cluster_keys is not None:
            target.use(cluster_keys=args.cluster_keys)
        return target
    if not isinstance(target, RuntimeConfig):
        return target
    if args.cluster_keys is False and is_cluster_store_url(target.store_url):
        raise UsageError(
            f"--no-cluster-keys: the store {redact_url(target.store_url)} is a Redis Cluster, "
            "which needs the cluster key layout"
        )
    if cluster_keys(args, target.store.cluster or None):
        return attrs.evolve(target, store=attrs.evolve(target.store, cluster=True))
    return target


@asynccontextmanager
async def _open(target: Any) -> AsyncIterator[tuple[RelaynaRuntime, Any]]:
    if isinstance(target, App):
        async with target.open(worker=False, hub=False) as app:

            async def publish(task: dict[str, Any]) -> TaskEnvelope:
                handle = await app.publish(
                    task["task_type"],
                    task.get("payload"),
                    task_id=task.get("task_id"),
                    correlation_id=task.get("correlation_id"),
                    priority=task.get("priority"),
                    if_exists="error",  # an id that exists is refused, nothing published
                )
                return handle.task

            yield app.runtime, publish
        return
    if isinstance(target, RuntimeConfig):
        config = attrs.evolve(target, run_hub=False, declare=False)
        async with open_relayna_runtime(config) as runtime:
            yield runtime, None
        return
    raise UsageError(
        f"--app must name a relayna.App or a RuntimeConfig, not {type(target).__name__}"
    )


def _run(args: argparse.Namespace) -> int:
    try:
        from relayna.mcp import MCPConfig, RelaynaMCP
        from relayna.workflow import WorkflowStoreConfig
    except ImportError as exc:  # the optional SDK is missing
        raise UsageError(
            f"relayna mcp needs the mcp extra (pip install 'relayna[mcp]'): {exc}"
        ) from None
    target = _with_layout(load_target(args.app, what="relayna.App or RuntimeConfig"), args)
    config = MCPConfig(operations=args.allow_operations)

    async def main() -> None:
        async with _open(target) as (runtime, publish):
            # the runtime's resolved layout (a cluster URL implies it)
            workflow = WorkflowStoreConfig(
                prefix=args.workflow_prefix, cluster=runtime.config.store.cluster
            )
            server = RelaynaMCP(runtime, config=config, publish=publish, workflow=workflow)
            log.info("relayna mcp: serving %s over stdio (%s)", args.app, args.backend)
            await server.serve_stdio()

    return run_async(main, args.backend)
