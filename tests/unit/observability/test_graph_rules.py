"""The execution-graph rules of seed 001, per topology kind, against hand-written goldens.

The expectations below (and ``golden/*.json``) were written from the seed's
rules, not generated from the code: node ids, kinds, labels, timestamps and
edges are what seed 001 says each input must produce.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from relayna.observability import (
    EDGE_KINDS,
    NODE_KINDS,
    ExecutionGraph,
    TaskRecords,
    build_execution_graph,
)

GOLDEN = Path(__file__).parent / "golden"
T0 = datetime(2026, 4, 6, 10, 0, 0, tzinfo=UTC)


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def obs(event_type: str, at: float, **fields: Any) -> dict[str, Any]:
    return {"event_type": event_type, "timestamp": ts(at), **fields}


def status(task_id: str, value: str, at: float, event_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "status": value,
        "timestamp": ts(at),
        "event_id": event_id,
        **fields,
    }


def shape(graph: ExecutionGraph) -> tuple[list[tuple[Any, ...]], list[tuple[str, str, str]]]:
    nodes = [(n.id, n.kind, n.label) for n in graph.nodes]
    edges = [(e.source, e.target, e.kind) for e in graph.edges]
    return nodes, edges


SHARED_COMMON = {
    "queue_name": "tasks.queue",
    "consumer_name": "worker",
    "correlation_id": "task-123",
    "task_id": "task-123",
}


def shared_records() -> TaskRecords:
    observations = [
        obs("TaskMessageReceived", 0, retry_attempt=0, **SHARED_COMMON),
        obs("TaskMessageAcked", 0.05, retry_attempt=0, **SHARED_COMMON),  # no node of its own
        obs(
            "ConsumerRetryScheduled",
            1,
            retry_attempt=0,
            next_attempt=1,
            max_retries=1,
            retry_queue_name="tasks.queue.retry",
            delay_ms=1000,
            reason="handler_error",
            **SHARED_COMMON,
        ),
        obs("TaskMessageReceived", 2, retry_attempt=1, **SHARED_COMMON),
        obs(
            "ConsumerDeadLetterPublished",
            3,
            retry_attempt=1,
            dead_letter_queue_name="tasks.queue.dlq",
            reason="handler_error",
            exception_type="RuntimeError",
            exception_message="boom",
            **SHARED_COMMON,
        ),
    ]
    statuses = [
        status("task-123", "processing", 0.1, "ev-1"),
        status("task-123", "retrying", 1.1, "ev-2", message="Scheduling retry 1/1."),
        status("task-123", "failed", 3, "ev-3", message="boom"),
    ]
    # the stores return newest first
    return TaskRecords("task-123", statuses[::-1], observations[::-1])


def test_shared_task_with_retry_and_dlq_matches_the_golden_json() -> None:
    graph = build_execution_graph(shared_records(), topology_kind="shared_tasks_shared_status")
    expected = json.loads((GOLDEN / "shared_retry_dlq.json").read_text())
    assert graph.to_dict() == expected


def test_same_inputs_give_the_same_bytes_whatever_the_input_order() -> None:
    records = shared_records()
    shuffled = TaskRecords(
        records.task_id,
        records.statuses[::-1],
        records.observations[1::2] + records.observations[0::2],
    )
    a = orjson.dumps(
        build_execution_graph(records, topology_kind="shared_tasks_shared_status").to_dict()
    )
    b = orjson.dumps(
        build_execution_graph(shuffled, topology_kind="shared_tasks_shared_status").to_dict()
    )
    assert a == b


def test_partial_graph_from_status_and_dlq_records_only() -> None:
    records = TaskRecords(
        "task-9",
        statuses=[status("task-9", "processing", 0, "a"), status("task-9", "failed", 2, "b")],
        dlq_records=[
            {
                "dlq_id": "d1",
                "reason": "handler_error",
                "queue_name": "q.dlq",
                "source_queue_name": "q",
                "retry_attempt": 2,
                "dead_lettered_at": ts(1.5),
            }
        ],
    )
    graph = build_execution_graph(records, topology_kind="shared_tasks_shared_status")
    assert graph.summary.graph_completeness == "partial"
    assert shape(graph) == (
        [
            ("task:task-9", "task", "task-9"),
            ("status:task-9:1", "status_event", "processing"),
            ("dlq:task-9:record:1", "dlq_record", "handler_error"),
            ("status:task-9:2", "status_event", "failed"),
        ],
        [
            ("task:task-9", "status:task-9:1", "published_status"),
            ("task:task-9", "dlq:task-9:record:1", "dead_lettered_to"),
            ("task:task-9", "status:task-9:2", "published_status"),
        ],
    )
    record = graph.node("dlq:task-9:record:1")
    assert record.annotations["dlq_id"] == "d1"
    assert record.annotations["record"]["source_queue_name"] == "q"
    assert graph.summary.to_dict() == {
        "status": "failed",
        "started_at": ts(0),
        "ended_at": ts(2),
        "duration_ms": 2000,
        "graph_completeness": "partial",
    }


def test_a_dlq_record_matching_an_observed_dead_letter_is_one_node() -> None:
    records = shared_records()
    record = {
        "dlq_id": "abc",
        "reason": "handler_error",
        "retry_attempt": 1,
        "dead_lettered_at": ts(3.01),
    }
    graph = build_execution_graph(
        TaskRecords(records.task_id, records.statuses, records.observations, [record]),
        topology_kind="shared_tasks_shared_status",
    )
    dlq = graph.of_kind("dlq_record")
    assert [n.id for n in dlq] == ["dlq:task-123:1"]
    assert dlq[0].annotations["dlq_id"] == "abc"


def test_routed_attempts_carry_task_type_and_manual_retry_links_attempts() -> None:
    common = {"queue_name": "rtasks", "consumer_name": "w", "task_id": "doc-1"}
    records = TaskRecords(
        "doc-1",
        statuses=[
            status("doc-1", "processing", 0.1, "s1"),
            status("doc-1", "manual_retrying", 0.5, "s2"),
            status("doc-1", "processing", 1.1, "s3"),
            status("doc-1", "completed", 1.5, "s4"),
        ],
        observations=[
            obs("TaskMessageReceived", 0, task_type="resize", retry_attempt=0, **common),
            obs("TaskMessageReceived", 1, task_type="ocr", retry_attempt=0, **common),
        ],
    )
    graph = build_execution_graph(records, topology_kind="routed_tasks_shared_status")
    assert shape(graph) == (
        [
            ("task:doc-1", "task", "doc-1"),
            ("task-attempt:doc-1:1", "task_attempt", "doc-1 attempt 1"),
            ("status:doc-1:1", "status_event", "processing"),
            ("status:doc-1:2", "status_event", "manual_retrying"),
            ("task-attempt:doc-1:2", "task_attempt", "doc-1 attempt 2"),
            ("status:doc-1:3", "status_event", "processing"),
            ("status:doc-1:4", "status_event", "completed"),
        ],
        [
            ("task:doc-1", "task-attempt:doc-1:1", "received_by"),
            ("task-attempt:doc-1:1", "status:doc-1:1", "published_status"),
            ("task-attempt:doc-1:1", "status:doc-1:2", "published_status"),
            ("task-attempt:doc-1:1", "task-attempt:doc-1:2", "manual_retry_to"),
            ("task-attempt:doc-1:2", "status:doc-1:3", "published_status"),
            ("task-attempt:doc-1:2", "status:doc-1:4", "published_status"),
        ],
    )
    assert graph.node("task-attempt:doc-1:1").annotations["task_type"] == "resize"
    assert graph.node("task-attempt:doc-1:2").annotations["task_type"] == "ocr"
    assert graph.annotations == {"task_types": ["ocr", "resize"]}
    assert graph.summary.status == "completed"
    # shared topologies do not annotate task types
    shared = build_execution_graph(records, topology_kind="shared_tasks_shared_status")
    assert "task_type" not in shared.node("task-attempt:doc-1:1").annotations
    assert shared.annotations == {}


def test_sharded_aggregation_adds_children_with_their_own_timelines() -> None:
    parent = TaskRecords(
        "parent-1",
        statuses=[
            status("parent-1", "processing", 0, "p1"),
            status("parent-1", "completed", 5, "p2"),
        ],
    )
    children = [
        TaskRecords(
            f"child-{i}",
            statuses=[
                status(
                    f"child-{i}", "completed", 2 + i, f"c{i}", meta={"parent_task_id": "parent-1"}
                )
            ],
            observations=[
                obs(
                    "AggregationMessageReceived",
                    1 + i,
                    task_id=f"child-{i}",
                    queue_name="agg.q",
                    consumer_name="agg",
                    retry_attempt=0,
                    parent_task_id="parent-1",
                )
            ],
        )
        for i in (2, 1)
    ]
    graph = build_execution_graph(
        parent, topology_kind="shared_tasks_shared_status_sharded_aggregation", children=children
    )
    assert graph.related_task_ids == ("child-1", "child-2")
    assert graph.summary.graph_completeness == "full"
    assert graph.summary.status == "completed"
    assert shape(graph) == (
        [
            ("task:parent-1", "task", "parent-1"),
            ("status:parent-1:1", "status_event", "processing"),
            ("aggregation_child:child-1", "aggregation_child", "child-1"),
            ("task-attempt:child-1:1", "task_attempt", "child-1 attempt 1"),
            ("aggregation_child:child-2", "aggregation_child", "child-2"),
            ("status:child-1:1", "status_event", "completed"),
            ("task-attempt:child-2:1", "task_attempt", "child-2 attempt 1"),
            ("status:child-2:1", "status_event", "completed"),
            ("status:parent-1:2", "status_event", "completed"),
        ],
        [
            ("task:parent-1", "status:parent-1:1", "published_status"),
            ("aggregation_child:child-1", "task-attempt:child-1:1", "received_by"),
            ("aggregation_child:child-1", "task:parent-1", "aggregated_into"),
            ("aggregation_child:child-2", "task-attempt:child-2:1", "received_by"),
            ("aggregation_child:child-2", "task:parent-1", "aggregated_into"),
            ("task-attempt:child-1:1", "status:child-1:1", "published_status"),
            ("task-attempt:child-2:1", "status:child-2:1", "published_status"),
            ("task:parent-1", "status:parent-1:2", "published_status"),
        ],
    )
    # a child's own graph names its parent
    child = build_execution_graph(children[1], topology_kind="shared_tasks_shared_status")
    assert child.related_task_ids == ("parent-1",)


def test_workflow_graph_is_stage_aware() -> None:
    common = {"task_id": "task-123", "correlation_id": "task-123"}
    records = TaskRecords(
        "task-123",
        statuses=[
            status("task-123", "planning", 1.5, "w1"),
            status("task-123", "completed", 3.5, "w2"),
        ],
        observations=[
            obs(
                "WorkflowMessageReceived",
                1,
                stage="planner",
                message_id="m1",
                queue_name="wf.planner",
                consumer_name="planner-w",
                retry_attempt=0,
                **common,
            ),
            obs(
                "WorkflowMessagePublished",
                2,
                stage="writer",
                message_id="m2",
                origin_stage="planner",
                queue_name="wf.planner",
                consumer_name="planner-w",
                **common,
            ),
            obs(
                "WorkflowStageAcked",
                2.1,
                stage="planner",
                message_id="m1",
                queue_name="wf.planner",
                consumer_name="planner-w",
                **common,
            ),
            obs(
                "WorkflowMessageReceived",
                3,
                stage="writer",
                message_id="m2",
                origin_stage="planner",
                queue_name="wf.writer",
                consumer_name="writer-w",
                retry_attempt=0,
                **common,
            ),
        ],
    )
    graph = build_execution_graph(records, topology_kind="shared_status_workflow")
    assert shape(graph) == (
        [
            ("task:task-123", "task", "task-123"),
            ("stage-attempt:task-123:planner:1", "stage_attempt", "planner attempt 1"),
            ("workflow-message:m1", "workflow_message", "planner"),
            ("status:task-123:1", "status_event", "planning"),
            ("workflow-message:m2", "workflow_message", "writer"),
            ("stage-attempt:task-123:writer:1", "stage_attempt", "writer attempt 1"),
            ("status:task-123:2", "status_event", "completed"),
        ],
        [
            ("task:task-123", "workflow-message:m1", "received_by"),
            ("workflow-message:m1", "stage-attempt:task-123:planner:1", "entered_stage"),
            ("stage-attempt:task-123:planner:1", "status:task-123:1", "published_status"),
            (
                "stage-attempt:task-123:planner:1",
                "workflow-message:m2",
                "stage_transitioned_to",
            ),
            ("workflow-message:m2", "stage-attempt:task-123:writer:1", "entered_stage"),
            ("stage-attempt:task-123:writer:1", "status:task-123:2", "published_status"),
        ],
    )


def test_empty_inputs_give_just_the_task_node() -> None:
    graph = build_execution_graph(TaskRecords("t"), topology_kind="shared_tasks_shared_status")
    assert [n.id for n in graph.nodes] == ["task:t"]
    assert graph.edges == ()
    assert graph.summary.to_dict() == {
        "status": None,
        "started_at": None,
        "ended_at": None,
        "duration_ms": None,
        "graph_completeness": "partial",
    }


def test_aliased_task_id_field() -> None:
    graph = build_execution_graph(TaskRecords("t"), topology_kind="x")
    data = graph.to_dict(task_id_field="documentId")
    assert data["documentId"] == "t"
    assert "task_id" not in data


def test_kinds_are_the_seed_vocabulary() -> None:
    assert set(NODE_KINDS) == {
        "task",
        "task_attempt",
        "workflow_message",
        "stage_attempt",
        "status_event",
        "retry",
        "dlq_record",
        "aggregation_child",
    }
    assert set(EDGE_KINDS) == {
        "received_by",
        "published_status",
        "retried_as",
        "dead_lettered_to",
        "manual_retry_to",
        "entered_stage",
        "stage_transitioned_to",
        "aggregated_into",
    }
