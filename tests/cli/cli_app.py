"""An App and a handler imported by the CLI tests as ``cli_app:NAME``."""

from __future__ import annotations

import os
from typing import Any

import relayna
from relayna.consumer import TaskContext
from relayna.contracts import TaskEnvelope
from relayna.topology import SharedTasksSharedStatusTopology

app = relayna.App(name="cli-app", broker="memory://", store="memory://")


@app.task("cli.echo")
async def echo(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {"echo": payload}


async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
    return None


def make_retry_topology(unique: str) -> SharedTasksSharedStatusTopology:
    return SharedTasksSharedStatusTopology(
        tasks_exchange=f"cli-err-{unique}",
        tasks_queue=f"cli-err-{unique}",
        tasks_routing_key="t",
        status_exchange=f"cli-err-status-{unique}",
        status_queue=f"cli-err-status-{unique}",
    )


retry_topology = make_retry_topology(os.environ.get("CLI_ERR_UNIQUE", "x"))


async def plain_asgi(scope: Any, receive: Any, send: Any) -> None:
    """Not a relayna.App: app-only options are refused for it."""
