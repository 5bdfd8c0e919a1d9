"""Quorum work queues and replicated status streams (``work_queue_type``,
``delivery_limit``, ``status_stream_initial_cluster_size``): the arguments they
declare, the defaults that keep existing queues, and the combinations a
quorum queue refuses, refused at construction."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayna.errors import TopologyError
from relayna.topology import (
    SharedTasksSharedStatusTopology,
    build_linear_workflow_topology,
)


def _topology(**overrides: Any) -> SharedTasksSharedStatusTopology:
    options: dict[str, Any] = {
        "tasks_exchange": "c.tasks",
        "tasks_queue": "c.tasks.q",
        "tasks_routing_key": "c",
        "status_exchange": "c.status",
        "status_queue": "c.status.q",
    }
    options.update(overrides)
    return SharedTasksSharedStatusTopology(**options)


def test_defaults_keep_classic_queues() -> None:
    topology = _topology(dead_letter_exchange="c.dlx")
    plan = topology.plan() + topology.retry_plan("c.tasks.q", 500)
    assert "x-queue-type" not in plan.queue("c.tasks.q").arguments  # type: ignore[union-attr]
    assert "x-queue-type" not in plan.queue("c.tasks.q.retry").arguments  # type: ignore[union-attr]
    assert plan.queue("c.tasks.q.dlq").arguments == {}  # type: ignore[union-attr]
    assert plan.queue("c.status.q").arguments == {"x-queue-type": "stream"}  # type: ignore[union-attr]


def test_quorum_task_retry_and_dlq_queues() -> None:
    topology = _topology(
        work_queue_type="quorum",
        delivery_limit=20,
        dead_letter_exchange="c.dlx",
        status_stream_initial_cluster_size=3,
    )
    plan = topology.plan() + topology.retry_plan("c.tasks.q", 500)
    assert plan.queue("c.tasks.q").arguments == {  # type: ignore[union-attr]
        "x-dead-letter-exchange": "c.dlx",
        "x-queue-type": "quorum",
        "x-delivery-limit": 20,
        # a quorum queue's default dead-lettering is at-most-once
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    retry = plan.queue("c.tasks.q.retry").arguments  # type: ignore[union-attr]
    assert retry["x-queue-type"] == "quorum"
    assert retry["x-dead-letter-strategy"] == "at-least-once"
    assert retry["x-message-ttl"] == 500
    assert "x-delivery-limit" not in retry  # never consumed
    # peeking a DLQ returns its messages: a limit there would drop them
    assert plan.queue("c.tasks.q.dlq").arguments == {"x-queue-type": "quorum"}  # type: ignore[union-attr]
    assert plan.queue("c.status.q").arguments == {  # type: ignore[union-attr]
        "x-queue-type": "stream",
        "x-initial-cluster-size": 3,
    }


def test_quorum_without_a_dead_letter_exchange_adds_no_strategy() -> None:
    args = _topology(work_queue_type="quorum").task_queue_arguments()
    assert args == {"x-queue-type": "quorum"}


def test_workflow_stage_queues_follow_work_queue_type() -> None:
    topology = build_linear_workflow_topology(
        workflow_exchange="c.wf",
        status_exchange="c.status",
        status_queue="c.status.q",
        stage_names=["a", "b"],
        work_queue_type="quorum",
        delivery_limit=7,
    )
    for stage in ("a", "b"):
        args = topology.workflow_queue_arguments(stage)
        assert args == {"x-queue-type": "quorum", "x-delivery-limit": 7}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"task_max_priority": 5}, "x-max-priority is not allowed"),
        ({"task_queue_kwargs": {"x-queue-mode": "lazy"}}, "x-queue-mode is not allowed"),
        ({"task_queue_kwargs": {"x-overflow": "reject-publish-dlx"}}, "reject-publish-dlx"),
        ({"task_queue_type": "classic"}, "x-queue-type"),
        ({"work_queue_type": "stream"}, "work_queue_type must be one of"),
        ({"work_queue_type": "classic", "delivery_limit": 3}, "needs work_queue_type='quorum'"),
        ({"delivery_limit": 0}, "delivery limit must be a positive integer"),
        ({"delivery_limit": True}, "delivery limit must be a positive integer"),
        (
            {"status_use_streams": False, "status_stream_initial_cluster_size": 3},
            "status_use_streams is False",
        ),
        ({"status_stream_initial_cluster_size": 0}, "initial cluster size must be a positive"),
    ],
)
def test_refused_combinations(overrides: dict[str, Any], message: str) -> None:
    options: dict[str, Any] = {"work_queue_type": "quorum", **overrides}
    with pytest.raises(TopologyError, match=message):
        _topology(**options)


def test_a_classic_queue_keeps_its_priority() -> None:
    args = _topology(task_max_priority=5).task_queue_arguments()
    assert args["x-max-priority"] == 5


@given(
    limit=st.one_of(st.none(), st.integers(-3, 10_000)),
    size=st.one_of(st.none(), st.integers(-3, 9)),
    dlx=st.booleans(),
)
def test_every_quorum_combination_is_declared_or_refused(
    limit: int | None, size: int | None, dlx: bool
) -> None:
    options: dict[str, Any] = {
        "work_queue_type": "quorum",
        "delivery_limit": limit,
        "status_stream_initial_cluster_size": size,
        "dead_letter_exchange": "c.dlx" if dlx else None,
    }
    if (limit is not None and limit <= 0) or (size is not None and size <= 0):
        with pytest.raises(TopologyError):
            _topology(**options)
        return
    topology = _topology(**options)
    args = topology.task_queue_arguments()
    assert args["x-queue-type"] == "quorum"
    assert args.get("x-delivery-limit") == limit
    assert (args.get("x-dead-letter-strategy") == "at-least-once") is dlx
    assert topology.status_queue_arguments().get("x-initial-cluster-size") == size
