"""Fan-in joins and transition cycles are checked when the topology is built."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayna.errors import TopologyError
from relayna.topology import (
    FanIn,
    SharedStatusWorkflowTopology,
    WorkflowStage,
    build_search_aggregate_workflow_topology,
    export_workflow_graph,
    transition_cycle,
)


def stage(name: str, *nexts: str, **kw: Any) -> WorkflowStage:
    return WorkflowStage(
        name, f"wf.{name}", (f"{name}.in",), f"{name}.in", allowed_next_stages=nexts, **kw
    )


def workflow(*stages: WorkflowStage) -> SharedStatusWorkflowTopology:
    return SharedStatusWorkflowTopology(
        workflow_exchange="wf.x", status_exchange="st.x", status_queue="st.q", stages=stages
    )


def problems_of(*stages: WorkflowStage) -> str:
    with pytest.raises(TopologyError) as info:
        workflow(*stages)
    return "\n".join(info.value.problems)


def test_a_join_of_named_branches_is_accepted_and_exported() -> None:
    topology = workflow(
        stage("split", "a", "b", "c"),
        stage("a", "join"),
        stage("b", "join"),
        stage("c", "join"),
        stage("join", join=FanIn(expected=("a", "b", "c"))),
    )
    join = export_workflow_graph(topology)["stages"][4]["join"]
    assert join == {
        "expected": ["a", "b", "c"],
        "expected_count": 3,
        "key": "origin_stage",
        "ttl_seconds": 86400.0,
    }
    assert export_workflow_graph(topology)["stages"][0]["join"] is None


def test_a_counted_join_defaults_to_message_ids() -> None:
    fan_in = FanIn(expected=4)
    assert (fan_in.branch_key, fan_in.expected_count, fan_in.expected_stages) == (
        "message_id",
        4,
        (),
    )
    workflow(stage("split", "work"), stage("work", "join"), stage("join", join=fan_in))


def test_a_join_naming_a_stage_no_edge_leads_from_is_rejected() -> None:
    text = problems_of(
        stage("a", "join"),
        stage("b"),  # declares no transition to join
        stage("join", join=FanIn(expected=("a", "b"))),
    )
    assert "names stage 'b', but no edge leads from 'b' to 'join'" in text


def test_a_join_naming_an_unknown_stage_is_rejected() -> None:
    text = problems_of(stage("a", "join"), stage("join", join=FanIn(expected=("a", "ghost"))))
    assert "names unknown stage 'ghost'" in text


@pytest.mark.parametrize(
    ("fan_in", "message"),
    [
        (FanIn(expected=()), "expected must name at least one stage"),
        (FanIn(expected=("a", "a")), "expected stages must be unique"),
        (FanIn(expected=0), "expected must be >= 1 branch"),
        (FanIn(expected=("a",), key="body.x"), "key must be origin_stage"),
        (FanIn(expected=("a",), key="payload."), "key must be origin_stage"),
        (FanIn(expected=("a",), ttl_seconds=0), "ttl_seconds must be > 0"),
    ],
)
def test_bad_joins_are_rejected(fan_in: FanIn, message: str) -> None:
    assert message in problems_of(stage("a", "join"), stage("join", join=fan_in))


def test_a_counted_join_nobody_transitions_to_is_rejected() -> None:
    assert "no stage declares a transition to 'join'" in problems_of(
        stage("a"), stage("join", join=FanIn(expected=2))
    )


def test_a_join_cannot_also_deduplicate() -> None:
    text = problems_of(
        stage("a", "join"), stage("join", join=FanIn(expected=("a",)), dedup_key_fields=("k",))
    )
    assert "dedup_key_fields cannot be combined with join" in text


@pytest.mark.parametrize(
    ("stages", "cycle"),
    [
        ((stage("a", "a"),), "a -> a"),
        ((stage("a", "b"), stage("b", "a")), "a -> b -> a"),
        ((stage("x", "a"), stage("a", "b"), stage("b", "c"), stage("c", "a")), "a -> b -> c -> a"),
    ],
)
def test_cyclic_transitions_are_rejected(stages: tuple[WorkflowStage, ...], cycle: str) -> None:
    assert f"workflow transitions must not form a cycle: {cycle}" in problems_of(*stages)


def test_the_search_template_joins_its_searches() -> None:
    topology = build_search_aggregate_workflow_topology(
        workflow_exchange="wf.x", status_exchange="st.x", status_queue="st.q"
    )
    join = topology.stage("researcher_aggregator").join
    assert join is not None
    assert join.expected_stages == ("docsearcher", "websearcher")
    loose = build_search_aggregate_workflow_topology(
        workflow_exchange="wf.x", status_exchange="st.x", status_queue="st.q", enforce_order=False
    )
    assert loose.stage("researcher_aggregator").join is None


def _reaches(graph: dict[str, list[str]], start: str, goal: str) -> bool:
    seen, todo = set(), list(graph[start])
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 7).flatmap(
        lambda n: st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=14
        ).map(lambda edges: (n, edges))
    )
)
def test_transition_cycle_matches_reachability(data: tuple[int, list[tuple[int, int]]]) -> None:
    n, edges = data
    graph: dict[str, list[str]] = {f"s{i}": [] for i in range(n)}
    for a, b in edges:
        if f"s{b}" not in graph[f"s{a}"]:
            graph[f"s{a}"].append(f"s{b}")
    cycle = transition_cycle(graph)
    cyclic = any(_reaches(graph, s, s) for s in graph)
    assert (cycle is not None) == cyclic
    if cycle is not None:
        assert cycle[0] == cycle[-1]
        assert all(b in graph[a] for a, b in itertools.pairwise(cycle))
