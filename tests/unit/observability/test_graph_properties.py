"""Properties of build_execution_graph over generated timelines (Hypothesis)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from relayna.observability import EDGE_KINDS, NODE_KINDS, TaskRecords, build_execution_graph

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = [
    "TaskMessageReceived",
    "ConsumerRetryScheduled",
    "ConsumerDeadLetterPublished",
    "WorkflowMessageReceived",
    "WorkflowMessagePublished",
    "TaskMessageAcked",
    "AggregationMessageReceived",
    "Unknown",
]
STATUSES = ["processing", "retrying", "manual_retrying", "completed", "failed", "x"]


@st.composite
def timelines(draw: Any) -> TaskRecords:
    n = draw(st.integers(0, 30))
    offsets = draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))
    observations: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    for i, ms in enumerate(offsets):
        at = (T0 + timedelta(milliseconds=ms)).isoformat()
        if draw(st.booleans()):
            statuses.append(
                {
                    "task_id": "t",
                    "status": draw(st.sampled_from(STATUSES)),
                    "timestamp": at,
                    "event_id": f"e{i}",
                }
            )
        else:
            observations.append(
                {
                    "event_type": draw(st.sampled_from(KINDS)),
                    "timestamp": at,
                    "task_id": "t",
                    "stage": draw(st.sampled_from(["a", "b"])),
                    "origin_stage": draw(st.sampled_from([None, "a", "b"])),
                    "message_id": draw(st.sampled_from(["m1", "m2", "m3", None])),
                    "reason": "handler_error",
                    "retry_attempt": draw(st.integers(0, 3)),
                }
            )
    return TaskRecords("t", statuses, observations)


def _json(records: TaskRecords, kind: str = "shared_tasks_shared_status") -> bytes:
    return orjson.dumps(build_execution_graph(records, topology_kind=kind).to_dict())


@settings(max_examples=200, deadline=None)
@given(timelines(), st.randoms(use_true_random=False))
def test_graph_is_consistent_and_order_independent(
    records: TaskRecords, rnd: random.Random
) -> None:
    graph = build_execution_graph(records, topology_kind="shared_tasks_shared_status")
    ids = [n.id for n in graph.nodes]
    assert len(ids) == len(set(ids))
    assert {n.kind for n in graph.nodes} <= set(NODE_KINDS)
    assert {e.kind for e in graph.edges} <= set(EDGE_KINDS)
    for edge in graph.edges:
        assert edge.source in ids
        assert edge.target in ids
    received = sum(
        o["event_type"] in ("TaskMessageReceived", "AggregationMessageReceived")
        for o in records.observations
    )
    assert len(graph.of_kind("task_attempt")) == received
    assert len(graph.of_kind("status_event")) == len(records.statuses)
    assert graph.summary.graph_completeness == ("full" if records.observations else "partial")
    # every non-root node is reachable from an edge
    targets = {e.target for e in graph.edges} | {e.source for e in graph.edges}
    assert all(n.id in targets for n in graph.nodes if n.kind != "task")
    # timestamps in the output never go backwards
    stamps = [n.timestamp for n in graph.nodes if n.timestamp is not None]
    assert stamps == sorted(stamps)
    # the store's order (newest first) or any shuffle gives the same bytes
    obs, sts = list(records.observations), list(records.statuses)
    rnd.shuffle(obs)
    rnd.shuffle(sts)
    assert _json(TaskRecords("t", sts, obs)) == _json(records)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["processing", "completed"]),
            st.one_of(st.none(), st.text(max_size=5), st.integers()),
        ),
        max_size=5,
    )
)
def test_unusable_timestamps_and_fields_never_raise(items: list[tuple[str, Any]]) -> None:
    statuses = [{"task_id": "t", "status": s, "timestamp": ts} for s, ts in items]
    observations = [{"event_type": "TaskMessageReceived", "timestamp": ts} for _, ts in items]
    graph = build_execution_graph(TaskRecords("t", statuses, observations), topology_kind="k")
    assert len(graph.of_kind("status_event")) == len(items)
