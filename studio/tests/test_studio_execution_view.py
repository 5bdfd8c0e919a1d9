"""``build_execution_view``: Studio's Mermaid of a federated graph is relayna's own
rendering of that graph, for any graph; malformed parts are left out, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relayna.observability import (
    ExecutionGraph,
    ExecutionGraphEdge,
    ExecutionGraphNode,
    ExecutionGraphSummary,
    execution_graph_mermaid,
)
from relayna_studio._execution_view import build_execution_view, graph_mermaid

_stamps = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@st.composite
def graphs(draw: st.DrawFn) -> ExecutionGraph:
    count = draw(st.integers(0, 8))
    nodes = tuple(
        ExecutionGraphNode(
            id=f"node-{i}",
            kind=draw(st.sampled_from(["task", "attempt", "status_event", "dlq_record"])),
            task_id="t",
            label=draw(st.text(min_size=1, max_size=200)),
            timestamp=draw(_stamps),
        )
        for i in range(count)
    )
    edges = tuple(
        ExecutionGraphEdge(
            source=f"node-{draw(st.integers(0, count + 1))}",  # may point at no node
            target=f"node-{draw(st.integers(0, count + 1))}",
            kind=draw(st.sampled_from(["attempted", "published_status", "retried_as"])),
        )
        for _ in range(draw(st.integers(0, 10)))
    )
    return ExecutionGraph(
        task_id="t",
        topology_kind="shared_tasks_shared_status",
        summary=ExecutionGraphSummary(
            status="completed", started_at=None, ended_at=None, graph_completeness="full"
        ),
        nodes=nodes,
        edges=edges,
    )


@settings(max_examples=60, deadline=None)
@given(graphs())
def test_studio_draws_what_the_service_draws(graph: ExecutionGraph) -> None:
    as_json = graph.to_dict()
    assert graph_mermaid(as_json) == execution_graph_mermaid(graph)
    view = build_execution_view(as_json, task_id="t")
    assert view["mermaid"] == execution_graph_mermaid(graph)
    assert view["summary"] == as_json["summary"]
    assert view["graph"] == as_json


_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["nodes", "edges", "summary", "related_task_ids", "task_id",
                                        "topology_kind"]), _junk))  # fmt: skip
def test_a_malformed_graph_is_drawn_from_what_is_well_formed(graph: dict[str, Any]) -> None:
    nodes = graph.get("nodes")
    if not isinstance(nodes, list):
        graph["nodes"] = nodes = []
    if not isinstance(graph.get("edges"), list):
        graph["edges"] = []
    nodes.append({"id": "ok", "kind": "task", "label": "fine", "timestamp": "not a time"})
    view = build_execution_view(graph, task_id="t")
    assert view["mermaid"].startswith("flowchart LR\n")
    assert '["fine<br/>task"]' in view["mermaid"]
    assert isinstance(view["summary"], dict)
    assert isinstance(view["related_task_ids"], list)
