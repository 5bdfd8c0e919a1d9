from __future__ import annotations

from typing import Any

import pytest

from relayna.errors import TopologyError, WorkflowContractError
from relayna.topology import (
    ActionSchema,
    PayloadSchema,
    SharedStatusWorkflowTopology,
    WorkflowEntryRoute,
    WorkflowStage,
    build_linear_workflow_topology,
    build_search_aggregate_workflow_topology,
    export_workflow_graph,
    resolve_stage_for_routing_key,
    stages_for_routing_key,
    summarize_topology,
    topology_kind,
    validate_topology,
    validate_workflow_inbound,
    validate_workflow_publish,
    workflow_graph_mermaid,
)
from relayna.transport import BindingSpec, ExchangeSpec

QUERY = PayloadSchema(name="query", required_fields=("q",), optional_fields=("lang",))


def stage(name: str, **kw: Any) -> WorkflowStage:
    return WorkflowStage(name, f"wf.{name}", (f"{name}.in",), f"{name}.in", **kw)


def workflow(*stages: WorkflowStage, **kw: Any) -> SharedStatusWorkflowTopology:
    options: dict[str, Any] = {
        "workflow_exchange": "wf.x",
        "status_exchange": "status.x",
        "status_queue": "status.q",
        **kw,
    }
    return SharedStatusWorkflowTopology(stages=stages, **options)


@pytest.fixture
def contract_topology() -> SharedStatusWorkflowTopology:
    return workflow(
        stage(
            "planner",
            allowed_next_stages=("search",),
            produced_actions=(ActionSchema(action="search", payload=QUERY),),
        ),
        stage(
            "search",
            accepted_actions=(ActionSchema(action="search", payload=QUERY),),
            allowed_next_stages=("writer",),
        ),
        stage("writer", terminal=True),
    )


def test_plan_declares_every_stage_inbox(contract_topology: SharedStatusWorkflowTopology) -> None:
    plan = contract_topology.plan()
    assert plan.exchanges == (ExchangeSpec("wf.x", "topic"), ExchangeSpec("status.x", "topic"))
    assert plan.queue_names == ("status.q", "wf.planner", "wf.search", "wf.writer")
    assert BindingSpec("wf.search", "wf.x", "search.in") in plan.bindings
    assert contract_topology.tasks_queue == "wf.planner"
    assert contract_topology.default_workflow_stage() == "planner"
    single = contract_topology.stage_queue_plan("search")
    assert single.queue_names == ("wf.search",)


def test_publishing_a_task_raises(contract_topology: SharedStatusWorkflowTopology) -> None:
    with pytest.raises(TopologyError, match="does not route tasks"):
        contract_topology.task_routing_key("x", "t1")


def test_stage_queue_arguments_merge_global_and_stage_sources() -> None:
    topology = workflow(
        stage("a", queue_arguments_overrides={"x-a": 1}, queue_kwargs={"x-b": 2}),
        dead_letter_exchange="dlx",
        workflow_max_priority=4,
        workflow_queue_kwargs={"x-c": 3},
    )
    assert topology.workflow_queue_arguments("a") == {
        "x-dead-letter-exchange": "dlx",
        "x-max-priority": 4,
        "x-a": 1,
        "x-c": 3,
        "x-b": 2,
    }
    assert topology.max_priority_for("wf.a") == 4


def test_global_and_stage_conflict_names_both_sources() -> None:
    with pytest.raises(TopologyError) as info:
        workflow(
            stage("a", queue_kwargs={"x-a": 1}),
            workflow_queue_arguments_overrides={"x-a": 2},
        )
    assert "workflow_queue_arguments_overrides" in str(info.value)
    assert "stage queue_kwargs" in str(info.value)


@pytest.mark.parametrize(
    ("stages", "kw", "fragment"),
    [
        ((), {}, "at least one workflow stage"),
        ((stage("a"), stage("a")), {}, "duplicate workflow stage name"),
        ((stage("a"), WorkflowStage("b", "wf.a", "b.in", "b.in")), {}, "duplicate queue name"),
        ((WorkflowStage("a", "status.q", "a.in", "a.in"),), {}, "duplicate queue name"),
        ((stage("a", allowed_next_stages=("ghost",)),), {}, "unknown next stage"),
        ((stage("a", terminal=True, allowed_next_stages=("a",)),), {}, "terminal"),
        (
            (stage("a", terminal=True, produced_actions=(ActionSchema(action="x"),)),),
            {},
            "terminal",
        ),
        ((WorkflowStage("a", "q", (" ",), "a.in"),), {}, "binding key"),
        ((WorkflowStage("a", "q", "a.in", ""),), {}, "publish_routing_key"),
        ((stage("a", sla_ms=0),), {}, "sla_ms"),
        ((stage("a", timeout_seconds=0),), {}, "timeout_seconds"),
        ((stage("a", max_retries=-1),), {}, "max_retries"),
        ((stage("a", retry_delay_ms=0),), {}, "retry_delay_ms"),
        ((stage("a", max_inflight=0),), {}, "max_inflight"),
        ((stage("a", dedup_key_fields=("k", "k")),), {}, "unique"),
        ((stage("a", dedup_key_fields=("",)),), {}, "dedup_key_fields"),
        ((stage("a", accepted_actions=(ActionSchema(action="x"),) * 2),), {}, "duplicate action"),
        ((stage("a", produced_actions=(ActionSchema(action=" "),)),), {}, "non-empty action"),
        (
            (stage("a"),),
            {"entry_routes": (WorkflowEntryRoute("e", "a.in", "b"),)},
            "unknown target",
        ),
        ((stage("a"),), {"entry_routes": (WorkflowEntryRoute("e", "", "a"),)}, "routing_key"),
        ((stage("a"),), {"entry_routes": (WorkflowEntryRoute("e", "zz", "a"),)}, "matches no"),
        (
            (stage("a"),),
            {"entry_routes": (WorkflowEntryRoute("e", "a.in", "a"),) * 2},
            "duplicate workflow entry route",
        ),
        ((stage("a"),), {"workflow_exchange": "status.x"}, "distinct"),
    ],
)
def test_invalid_workflows_raise_naming_the_problem(
    stages: tuple[WorkflowStage, ...], kw: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(TopologyError) as info:
        workflow(*stages, **kw)
    assert any(fragment in p for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(TopologyError) as info:
        workflow(stage("a", allowed_next_stages=("x",), max_retries=-1), stage("a"))
    assert len(info.value.problems) >= 3


# -- contract ------------------------------------------------------------------


def _reason(exc: pytest.ExceptionInfo[WorkflowContractError]) -> str:
    return exc.value.reason


def test_valid_handoff_passes(contract_topology: SharedStatusWorkflowTopology) -> None:
    validate_workflow_publish(
        contract_topology,
        target_stage="search",
        origin_stage="planner",
        action="search",
        payload={"q": "cats", "lang": "en"},
    )


def test_terminal_stage_handoff(contract_topology: SharedStatusWorkflowTopology) -> None:
    with pytest.raises(WorkflowContractError) as info:
        validate_workflow_publish(contract_topology, target_stage="planner", origin_stage="writer")
    assert info.value.reason == "terminal_stage_handoff"
    assert (info.value.source, info.value.target) == ("writer", "planner")


def test_forbidden_transition(contract_topology: SharedStatusWorkflowTopology) -> None:
    with pytest.raises(WorkflowContractError) as info:
        validate_workflow_publish(
            contract_topology, target_stage="writer", origin_stage="planner", action="search"
        )
    assert info.value.reason == "forbidden_transition"
    assert info.value.stage == "planner"


@pytest.mark.parametrize("action", [None, "", "delete"])
def test_unsupported_action(
    contract_topology: SharedStatusWorkflowTopology, action: str | None
) -> None:
    with pytest.raises(WorkflowContractError) as info:
        validate_workflow_publish(
            contract_topology, target_stage="search", action=action, payload={"q": "x"}
        )
    assert info.value.reason == "unsupported_action"


def test_origin_must_produce_the_action(contract_topology: SharedStatusWorkflowTopology) -> None:
    with pytest.raises(WorkflowContractError) as info:
        validate_workflow_publish(
            contract_topology, target_stage="search", origin_stage="planner", action="other"
        )
    assert info.value.reason == "unsupported_action"
    assert info.value.stage == "planner"


@pytest.mark.parametrize("payload", [{}, {"q": "x", "extra": 1}])
def test_payload_schema_violation(
    contract_topology: SharedStatusWorkflowTopology, payload: dict[str, Any]
) -> None:
    with pytest.raises(WorkflowContractError) as info:
        validate_workflow_publish(
            contract_topology, target_stage="search", action="search", payload=payload
        )
    assert info.value.reason == "payload_schema_violation"
    with pytest.raises(WorkflowContractError):
        validate_workflow_inbound(contract_topology.stage("search"), "search", payload)


def test_inbound_checks(contract_topology: SharedStatusWorkflowTopology) -> None:
    validate_workflow_inbound(contract_topology.stage("search"), "search", {"q": "x"})
    validate_workflow_inbound(contract_topology.stage("writer"), None, {"anything": 1})
    with pytest.raises(WorkflowContractError) as info:
        validate_workflow_inbound(contract_topology.stage("search"), "nope", {})
    assert info.value.reason == "unsupported_action"


def test_unknown_stage_in_contract(contract_topology: SharedStatusWorkflowTopology) -> None:
    with pytest.raises(TopologyError, match="unknown workflow stage"):
        validate_workflow_publish(contract_topology, target_stage="ghost")


def test_resolve_stage_for_routing_key() -> None:
    topology = workflow(
        stage("a"),
        WorkflowStage("b", "wf.b", ("b.in", "fan.*"), "b.in"),
        WorkflowStage("c", "wf.c", ("c.in", "fan.#"), "c.in"),
    )
    assert resolve_stage_for_routing_key(topology, "a.in") == "a"
    assert stages_for_routing_key(topology, "fan.out") == ("b", "c")
    with pytest.raises(TopologyError, match="exactly one"):
        resolve_stage_for_routing_key(topology, "fan.out")
    with pytest.raises(TopologyError, match="none"):
        resolve_stage_for_routing_key(topology, "zzz")


# -- templates, graph, summaries ----------------------------------------------


def test_linear_template() -> None:
    topology = build_linear_workflow_topology(
        workflow_exchange="wf.x",
        status_exchange="status.x",
        status_queue="status.q",
        stage_names=("a", "b", "c"),
    )
    assert topology.workflow_queue_names() == ("workflow.a", "workflow.b", "workflow.c")
    assert topology.stage("a").allowed_next_stages == ("b",)
    assert topology.workflow_binding_keys("b") == ("b.in",)
    loose = build_linear_workflow_topology(
        workflow_exchange="wf.x",
        status_exchange="status.x",
        status_queue="status.q",
        stage_names=("a", "b"),
        queue_prefix="p",
        enforce_order=False,
        prefetch_count=5,
    )
    assert loose.stage("a").allowed_next_stages == ()
    assert loose.prefetch_count == 5


def test_search_aggregate_template_graph_and_mermaid() -> None:
    topology = build_search_aggregate_workflow_topology(
        workflow_exchange="wf.x", status_exchange="status.x", status_queue="status.q"
    )
    assert topology.workflow_stage_names() == (
        "planner",
        "docsearcher",
        "websearcher",
        "researcher_aggregator",
        "writer",
    )
    assert topology.workflow_entry_routing_key("planner") == "planner.in"
    assert topology.workflow_entry_target_stage("planner") == "planner"
    graph = export_workflow_graph(topology)
    assert set(graph) == {"workflow_exchange", "status_queue", "stages", "entry_routes", "edges"}
    transitions = {(e["source"], e["target"]) for e in graph["edges"] if e["kind"] == "transition"}
    assert transitions == {
        ("planner", "docsearcher"),
        ("planner", "websearcher"),
        ("docsearcher", "researcher_aggregator"),
        ("websearcher", "researcher_aggregator"),
        ("researcher_aggregator", "writer"),
    }
    assert graph["stages"][0]["queue"] == "workflow.planner"
    mermaid = workflow_graph_mermaid(topology)
    assert mermaid.splitlines()[0] == "flowchart LR"
    assert 'stage_planner -->|"docsearcher.in"| stage_docsearcher' in mermaid
    assert "entry_planner" in mermaid


def test_graph_route_edges_follow_topic_bindings() -> None:
    topology = workflow(
        WorkflowStage("a", "wf.a", ("a.in",), "jobs.new"),
        WorkflowStage("b", "wf.b", ("jobs.*",), "b.in"),
    )
    edges = export_workflow_graph(topology)["edges"]
    assert edges == [{"source": "a", "target": "b", "routing_key": "jobs.new", "kind": "route"}]
    assert "-.->" in workflow_graph_mermaid(topology)


def test_mermaid_node_ids_are_sanitized_and_unique() -> None:
    topology = workflow(
        WorkflowStage("a-b", "q1", ("x.in",), "x.in"),
        WorkflowStage("a_b", "q2", ("y.in",), "y.in"),
        WorkflowStage("end", "q3", ("z.in",), "z.in"),
        WorkflowStage('quote"d', "q4", ("w.in",), "w.in"),
    )
    lines = workflow_graph_mermaid(topology).splitlines()[1:]
    ids = [line.split("[", 1)[0].strip() for line in lines]
    assert len(set(ids)) == 4
    assert "stage_end" in ids
    assert all(i.replace("_", "").isalnum() for i in ids)
    assert "#quot;" in lines[3]


def test_kind_validate_summarize(contract_topology: SharedStatusWorkflowTopology) -> None:
    assert topology_kind(contract_topology) == "shared_status_workflow"
    assert topology_kind(object()) == "object"
    assert validate_topology(contract_topology) == []
    assert validate_topology(object()) == ["unsupported topology type 'object'"]
    summary = summarize_topology(contract_topology)
    assert summary["kind"] == "shared_status_workflow"
    assert summary["workflow_exchange"] == "wf.x"
    assert [s["name"] for s in summary["workflow_stages"]] == ["planner", "search", "writer"]
    assert summary["workflow_stages"][1]["accepted_actions"][0]["payload"]["required_fields"] == [
        "q"
    ]
