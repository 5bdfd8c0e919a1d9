"""``relayna publish``: publish one task (JSON argument or stdin) and wait for the confirm."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from relayna.cli._cmd_topology import load_topology
from relayna.cli._common import Subcommands, UsageError, add_backend_arg, env_default, run_async


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "publish",
        help="publish a task from JSON (argument or stdin)",
        description=(
            "Publish one task envelope to the topology's tasks exchange and wait for the "
            "broker confirm. A missing task_id is generated; the task_id is printed."
        ),
    )
    p.add_argument("task", nargs="?", default="-", help="task JSON, or - to read stdin (default)")
    p.add_argument(
        "--topology",
        required=True,
        metavar="MODULE:TOPOLOGY",
        help="the topology whose tasks exchange receives the task",
    )
    p.add_argument(
        "--broker-url",
        default=env_default("RELAYNA_BROKER_URL"),
        help="amqp://, amqps:// (a cluster: user:pw@h1:5672,h2:5672) or memory:// (env RELAYNA_BROKER_URL)",
    )
    p.add_argument("--task-type", default=None, help="set task_type (routed topologies)")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="give the task a deadline SECONDS from now (not started after it, cancelled at it)",
    )
    add_backend_arg(p)
    p.set_defaults(handler=_run)


def read_task(text: str, task_type: str | None) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"task is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError('task JSON must be an object like {"payload": {...}}')
    data.setdefault("task_id", uuid.uuid4().hex)
    if task_type:
        data["task_type"] = task_type
    return data


def _run(args: argparse.Namespace) -> int:
    if not args.broker_url:
        raise UsageError("--broker-url (or RELAYNA_BROKER_URL) is required")
    if args.timeout is not None:
        from relayna.contracts import deadline_from
        from relayna.errors import ContractError

        try:
            deadline_from(timeout=args.timeout, now=0.0)
        except ContractError as exc:
            raise UsageError(f"--timeout: {exc}") from None
    text = sys.stdin.read() if args.task == "-" else args.task
    task = read_task(text, args.task_type)
    topology = load_topology(args.topology)

    async def main() -> None:
        from relayna.rabbitmq import open_relayna_client

        async with open_relayna_client(topology, args.broker_url) as client:
            published = await client.publish_task(task, timeout=args.timeout)
        print(published.task_id)

    return run_async(main, args.backend)
