"""``relayna declare`` and ``relayna topology show``: topologies as data, printed or applied."""

from __future__ import annotations

import argparse
import json
from typing import Any

from relayna._urls import redact_url
from relayna.cli._common import (
    Subcommands,
    UsageError,
    add_backend_arg,
    env_default,
    load_target,
    run_async,
)
from relayna.topology import DeclarationPlan, summarize_topology, topology_kind


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "declare",
        help="apply a topology's declaration plan to the broker (or print it with --dry-run)",
        description="Declare the exchanges, queues and bindings of MODULE:TOPOLOGY, in order.",
    )
    p.add_argument("topology", metavar="MODULE:TOPOLOGY", help="the topology to declare")
    p.add_argument(
        "--broker-url",
        default=env_default("RELAYNA_BROKER_URL"),
        help="amqp://, amqps:// (a cluster: user:pw@h1:5672,h2:5672) or memory:// (env RELAYNA_BROKER_URL)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, declare nothing")
    add_backend_arg(p)
    p.set_defaults(handler=_declare)

    t = sub.add_parser("topology", help="inspect a topology", description="Inspect a topology.")
    tsub = t.add_subparsers(dest="topology_command", metavar="SUBCOMMAND", required=True)
    show = tsub.add_parser(
        "show",
        help="print a topology as text (and Mermaid for workflows)",
        description="Print the topology's kind, RabbitMQ objects and, for workflows, a Mermaid graph.",
    )
    show.add_argument("topology", metavar="MODULE:TOPOLOGY", help="the topology to print")
    show.add_argument(
        "--format",
        choices=["text", "json", "mermaid"],
        default="text",
        help="text (default), json, or mermaid (workflow topologies only)",
    )
    show.set_defaults(handler=_show)


def load_topology(spec: str) -> Any:
    obj = load_target(spec, what="topology")
    if callable(obj) and not hasattr(obj, "plan"):
        obj = obj()
    if not hasattr(obj, "plan"):
        raise UsageError(f"{spec} is not a relayna topology (it has no plan())")
    return obj


def format_plan(plan: DeclarationPlan) -> str:
    lines = []
    for ex in plan.exchanges:
        lines.append(f"exchange  {ex.name:<40} type={ex.type} durable={ex.durable}")
    for q in plan.queues:
        args = " ".join(f"{k}={v}" for k, v in sorted(q.arguments.items()))
        lines.append(f"queue     {q.name:<40} {args}".rstrip())
    for b in plan.bindings:
        lines.append(f"binding   {b.queue:<40} <- {b.exchange or '(default)'} [{b.routing_key}]")
    return "\n".join(lines)


def _declare(args: argparse.Namespace) -> int:
    topology = load_topology(args.topology)
    plan: DeclarationPlan = topology.plan()
    print(f"# {topology_kind(topology)}")
    print(format_plan(plan))
    if args.dry_run:
        return 0
    if not args.broker_url:
        raise UsageError("--broker-url (or RELAYNA_BROKER_URL) is required unless --dry-run")

    async def main() -> None:
        from relayna.transport import open_broker

        async with open_broker(args.broker_url) as broker:
            await plan.apply(broker)
        print(
            f"declared {len(plan.exchanges)} exchanges, {len(plan.queues)} queues, "
            f"{len(plan.bindings)} bindings on {redact_url(args.broker_url)}"
        )

    return run_async(main, args.backend)


def _show(args: argparse.Namespace) -> int:
    topology = load_topology(args.topology)
    summary = summarize_topology(topology)
    if args.format == "json":
        print(json.dumps(summary, indent=2, default=str))
        return 0
    mermaid = _mermaid(topology)
    if args.format == "mermaid":
        if mermaid is None:
            raise UsageError("only workflow topologies have a Mermaid graph")
        print(mermaid)
        return 0
    print(f"kind: {topology_kind(topology)}")
    for key, value in summary.items():
        if key not in {"kind", "stages"}:
            print(f"{key}: {value}")
    print()
    print(format_plan(topology.plan()))
    if mermaid is not None:
        print("\n```mermaid")
        print(mermaid)
        print("```")
    return 0


def _mermaid(topology: Any) -> str | None:
    from relayna.topology import SharedStatusWorkflowTopology, workflow_graph_mermaid

    if isinstance(topology, SharedStatusWorkflowTopology):
        return str(workflow_graph_mermaid(topology))
    return None
