from __future__ import annotations

from typing import Any

import attrs
import pytest

from relayna.errors import ContractError, TopologyError
from relayna.topology import (
    RoutedTasksSharedStatusTopology,
    SharedTasksSharedStatusTopology,
)
from relayna.transport import BindingSpec, ExchangeSpec, QueueSpec

from ._support import base_kwargs


def shared(**kw: Any) -> SharedTasksSharedStatusTopology:
    return SharedTasksSharedStatusTopology(**base_kwargs(tasks_routing_key="tasks", **kw))


def test_default_plan_matches_the_original_wire_contract() -> None:
    plan = shared().plan()
    assert plan.exchanges == (
        ExchangeSpec("tasks.x", "direct", durable=True),
        ExchangeSpec("status.x", "topic", durable=True),
    )
    assert plan.queues == (
        QueueSpec("status.q", durable=True, arguments={"x-queue-type": "stream"}),
        QueueSpec("tasks.q", durable=True),
    )
    assert plan.bindings == (
        BindingSpec("status.q", "status.x", "#"),
        BindingSpec("tasks.q", "tasks.x", "tasks"),
    )


def test_dead_letter_exchange_is_declared_first_as_fanout() -> None:
    topology = shared(dead_letter_exchange="dlx")
    plan = topology.plan()
    assert plan.exchanges[0] == ExchangeSpec("dlx", "fanout", durable=True)
    assert topology.task_queue_arguments() == {"x-dead-letter-exchange": "dlx"}
    assert not any(b.exchange == "dlx" for b in plan.bindings)


def test_task_queue_arguments_from_typed_fields_and_overrides() -> None:
    topology = shared(
        tasks_message_ttl_ms=60_000,
        task_consumer_timeout_ms=1_800_000,
        task_single_active_consumer=True,
        task_max_priority=10,
        task_queue_type="classic",
        task_queue_arguments_overrides={"x-delivery-limit": 5},
        task_queue_kwargs={"x-custom": "v"},
    )
    assert topology.task_queue_arguments() == {
        "x-message-ttl": 60_000,
        "x-consumer-timeout": 1_800_000,
        "x-single-active-consumer": True,
        "x-max-priority": 10,
        "x-queue-type": "classic",
        "x-delivery-limit": 5,
        "x-custom": "v",
    }
    assert topology.max_priority_for("tasks.q") == 10
    assert topology.max_priority_for("status.q") is None
    assert topology.max_priority_for("unknown") is None


@pytest.mark.parametrize(
    "kw",
    [
        {"task_max_priority": 5, "task_queue_arguments_overrides": {"x-max-priority": 6}},
        {"task_queue_arguments_overrides": {"x-a": 1}, "task_queue_kwargs": {"x-a": 1}},
        {"status_queue_arguments_overrides": {"x-queue-type": "classic"}},
        {"dead_letter_exchange": "dlx", "task_queue_kwargs": {"x-dead-letter-exchange": "o"}},
    ],
)
def test_conflicting_argument_keys_raise_at_construction(kw: dict[str, Any]) -> None:
    with pytest.raises(TopologyError, match="set in both"):
        shared(**kw)


def test_status_queue_classic_mode_and_offsets() -> None:
    streamed = shared(status_stream_initial_offset="first", status_stream_max_age="1D")
    assert streamed.status_consume_offset == "first"
    assert streamed.status_stream_consume_arguments() == {"x-stream-offset": "first"}
    assert streamed.status_queue_arguments()["x-max-age"] == "1D"
    classic = shared(status_use_streams=False, status_queue_ttl_ms=1000)
    assert classic.status_consume_offset is None
    assert classic.status_stream_consume_arguments() == {}
    assert classic.status_queue_arguments() == {"x-expires": 1000}
    assert shared().status_consume_offset == "last"


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"tasks_queue": "status.q"}, "duplicate queue name"),
        ({"status_exchange": "tasks.x"}, "distinct"),
        ({"dead_letter_exchange": "status.x"}, "distinct"),
        ({"prefetch_count": 0}, "prefetch_count"),
        ({"task_max_priority": 256}, "1..255"),
        ({"task_queue_type": "lazy"}, "queue type"),
        ({"tasks_message_ttl_ms": -1}, "TTL"),
        ({"status_stream_initial_offset": "middle"}, "status_stream_initial_offset"),
        ({"dead_letter_exchange": ""}, "dead_letter_exchange"),
        ({"tasks_queue": ""}, "tasks_queue"),
    ],
)
def test_bad_input_raises_a_topology_error_naming_the_problem(
    kw: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(TopologyError) as info:
        shared(**kw)
    assert any(fragment in p for p in info.value.problems), info.value.problems


def test_topology_is_frozen_and_copies_argument_tables() -> None:
    overrides = {"x-a": 1}
    topology = shared(task_queue_arguments_overrides=overrides)
    overrides["x-a"] = 2
    assert topology.task_queue_arguments()["x-a"] == 1
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        topology.tasks_queue = "other"  # type: ignore[misc]
    with pytest.raises(TopologyError):
        attrs.evolve(topology, tasks_queue="status.q")


def test_shared_routing() -> None:
    topology = shared()
    assert topology.task_routing_key() == "tasks"
    assert topology.task_routing_key("anything", "t1") == "tasks"
    assert topology.status_routing_key("t1") == "t1"
    with pytest.raises(ContractError):
        topology.status_routing_key("")
    with pytest.raises(ContractError):
        topology.status_routing_key(None)


def routed(**kw: Any) -> RoutedTasksSharedStatusTopology:
    return RoutedTasksSharedStatusTopology(**base_kwargs(**kw))


def test_routed_binds_each_task_type_once() -> None:
    topology = routed(task_types=("resize", " thumbnail ", "resize"))
    assert topology.task_binding_keys() == ("resize", "thumbnail")
    keys = [b.routing_key for b in topology.plan().bindings if b.queue == "tasks.q"]
    assert keys == ["resize", "thumbnail"]
    assert topology.task_routing_key("thumbnail") == "thumbnail"


def test_routed_routing_errors() -> None:
    topology = routed(task_types=("a",))
    with pytest.raises(ContractError):
        topology.task_routing_key(None)
    with pytest.raises(TopologyError, match="not routed"):
        topology.task_routing_key("b")


@pytest.mark.parametrize("types", [(), ("a", " ")])
def test_routed_needs_non_blank_task_types(types: tuple[str, ...]) -> None:
    with pytest.raises(TopologyError):
        routed(task_types=types)


def test_retry_plan_method() -> None:
    topology = shared()
    assert topology.retry_plan("tasks.q", 100).queue_names == ("tasks.q.retry", "tasks.q.dlq")
    with pytest.raises(TopologyError, match="status queue"):
        topology.retry_plan("status.q", 100)
