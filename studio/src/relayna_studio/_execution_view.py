"""``build_execution_view``: a federated execution graph with its Mermaid rendering.

The graph comes from a service as JSON (any relayna, including the original's
shape). Its nodes and edges are read back into relayna's own
:class:`~relayna.observability.ExecutionGraph` types so that the Mermaid text
is made by relayna's :func:`~relayna.observability.execution_graph_mermaid`
(the same escaping and the same output as the service's own
``?format=mermaid``), whatever the service's version. Malformed nodes and
edges (not objects, no string id/kind) are left out of the drawing, never an
error: the JSON graph is returned as it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from relayna.observability import (
    ExecutionGraph,
    ExecutionGraphEdge,
    ExecutionGraphNode,
    ExecutionGraphSummary,
    execution_graph_mermaid,
)

__all__ = ["build_execution_view", "graph_mermaid"]


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def graph_mermaid(graph: Mapping[str, Any]) -> str:
    """The Mermaid ``flowchart LR`` of a graph in its JSON shape."""
    nodes: list[ExecutionGraphNode] = []
    for node in graph.get("nodes") or []:
        if not isinstance(node, Mapping):
            continue
        node_id, kind = _text(node.get("id")), _text(node.get("kind"))
        if node_id is None or kind is None:
            continue
        label = node.get("label")
        nodes.append(
            ExecutionGraphNode(
                id=node_id,
                kind=kind,
                task_id=str(node.get("task_id") or ""),
                label=label if isinstance(label, str) and label else node_id,
                timestamp=_timestamp(node.get("timestamp")),
            )
        )
    edges: list[ExecutionGraphEdge] = []
    for edge in graph.get("edges") or []:
        if not isinstance(edge, Mapping):
            continue
        source, target = _text(edge.get("source")), _text(edge.get("target"))
        kind = _text(edge.get("kind"))
        if source is None or target is None or kind is None:
            continue
        edges.append(ExecutionGraphEdge(source=source, target=target, kind=kind))
    drawn = ExecutionGraph(
        task_id=str(graph.get("task_id") or ""),
        topology_kind=str(graph.get("topology_kind") or ""),
        summary=ExecutionGraphSummary(
            status=None, started_at=None, ended_at=None, graph_completeness="partial"
        ),
        nodes=tuple(nodes),
        edges=tuple(edges),
    )
    return execution_graph_mermaid(drawn)


def build_execution_view(graph: Mapping[str, Any], *, task_id: str) -> dict[str, Any]:
    """``{task_id, topology_kind, summary, related_task_ids, graph, mermaid}`` (the
    original's presenter shape); ``task_id`` is the canonical id (the graph may
    carry it under a payload alias)."""
    related = graph.get("related_task_ids")
    return {
        "task_id": task_id,
        "topology_kind": graph.get("topology_kind"),
        "summary": graph.get("summary") if isinstance(graph.get("summary"), Mapping) else {},
        "related_task_ids": related if isinstance(related, list) else [],
        "graph": dict(graph),
        "mermaid": graph_mermaid(graph),
    }
