"""Ready-made workflow topologies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relayna.topology._workflow import (
    SharedStatusWorkflowTopology,
    WorkflowEntryRoute,
    WorkflowStage,
)
from relayna.topology._workflow_join import FanIn

__all__ = ["build_linear_workflow_topology", "build_search_aggregate_workflow_topology"]


def _stage(
    queue_prefix: str, name: str, next_stages: Sequence[str], join: FanIn | None = None
) -> WorkflowStage:
    return WorkflowStage(
        name=name,
        queue=f"{queue_prefix}.{name}",
        binding_keys=(f"{name}.in",),
        publish_routing_key=f"{name}.in",
        allowed_next_stages=tuple(next_stages),
        join=join,
    )


def build_linear_workflow_topology(
    *,
    workflow_exchange: str,
    status_exchange: str,
    status_queue: str,
    stage_names: Sequence[str],
    queue_prefix: str = "workflow",
    enforce_order: bool = True,
    **options: Any,
) -> SharedStatusWorkflowTopology:
    """``a → b → c``: stage ``x`` has queue ``<queue_prefix>.x``, binding and
    publish key ``x.in``, and an entry route ``x`` per stage is *not* added
    (publish to the first stage directly).

    With ``enforce_order`` (default) each stage may hand off only to the next
    one (``allowed_next_stages``); the original left transitions open.
    ``options`` are passed to :class:`SharedStatusWorkflowTopology`.
    """
    names = list(stage_names)
    stages = tuple(
        _stage(queue_prefix, name, names[i + 1 : i + 2] if enforce_order else ())
        for i, name in enumerate(names)
    )
    return SharedStatusWorkflowTopology(
        workflow_exchange=workflow_exchange,
        status_exchange=status_exchange,
        status_queue=status_queue,
        stages=stages,
        **options,
    )


def build_search_aggregate_workflow_topology(
    *,
    workflow_exchange: str,
    status_exchange: str,
    status_queue: str,
    planner_stage: str = "planner",
    search_stages: Sequence[str] = ("docsearcher", "websearcher"),
    aggregate_stage: str = "researcher_aggregator",
    writer_stage: str = "writer",
    queue_prefix: str = "workflow",
    enforce_order: bool = True,
    **options: Any,
) -> SharedStatusWorkflowTopology:
    """planner → each search stage → aggregator → writer, entered through the
    entry route ``planner`` (routing key ``<planner>.in``).

    With ``enforce_order`` (default) the fan-out/fan-in shape is also the
    allowed transition graph, and the aggregator is a join
    (``FanIn(expected=search_stages)``): its handler runs once, with every
    search result, when all of them arrived. Without it, transitions are
    open and the aggregator runs once per search result (the original's
    behaviour).
    """
    searches = list(search_stages)

    def nxt(*targets: str) -> tuple[str, ...]:
        return tuple(targets) if enforce_order else ()

    stages = (
        _stage(queue_prefix, planner_stage, nxt(*searches)),
        *(_stage(queue_prefix, s, nxt(aggregate_stage)) for s in searches),
        _stage(
            queue_prefix,
            aggregate_stage,
            nxt(writer_stage),
            FanIn(expected=tuple(searches)) if enforce_order else None,
        ),
        _stage(queue_prefix, writer_stage, ()),
    )
    return SharedStatusWorkflowTopology(
        workflow_exchange=workflow_exchange,
        status_exchange=status_exchange,
        status_queue=status_queue,
        stages=stages,
        entry_routes=(
            WorkflowEntryRoute(
                name="planner", routing_key=f"{planner_stage}.in", target_stage=planner_stage
            ),
        ),
        **options,
    )
