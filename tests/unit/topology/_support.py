"""Helpers for topology tests: a recording fake broker, topology kwargs and strategies."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from relayna.errors import PreconditionFailed
from relayna.topology import (
    RoutedTasksSharedStatusShardedAggregationTopology,
    RoutedTasksSharedStatusTopology,
    SharedStatusWorkflowTopology,
    SharedTasksSharedStatusShardedAggregationTopology,
    SharedTasksSharedStatusTopology,
    WorkflowStage,
)
from relayna.transport import BindingSpec, ExchangeSpec, QueueInfo, QueueSpec


class RecordingBroker:
    """Just enough of the Broker protocol to apply a plan: records every call,
    keeps the declared state, and refuses a redeclare with other settings
    (like RabbitMQ's 406 PRECONDITION_FAILED)."""

    url = "recording://"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.exchanges: dict[str, ExchangeSpec] = {}
        self.queues: dict[str, QueueSpec] = {}
        self.bindings: list[BindingSpec] = []

    async def declare_exchange(self, spec: ExchangeSpec) -> None:
        self.calls.append(("exchange", spec))
        old = self.exchanges.setdefault(spec.name, spec)
        if old != spec:
            raise PreconditionFailed(f"exchange {spec.name!r} redeclared", reply_code=406)

    async def declare_queue(self, spec: QueueSpec) -> QueueInfo:
        self.calls.append(("queue", spec))
        old = self.queues.setdefault(spec.name, spec)
        if old != spec:
            raise PreconditionFailed(f"queue {spec.name!r} redeclared", reply_code=406)
        return QueueInfo(spec.name, 0, 0)

    async def bind_queue(self, spec: BindingSpec) -> None:
        self.calls.append(("bind", spec))
        assert spec.exchange in self.exchanges, "bind before exchange declare"
        assert spec.queue in self.queues, "bind before queue declare"
        if spec not in self.bindings:
            self.bindings.append(spec)

    def state(self) -> tuple[Any, ...]:
        return (dict(self.exchanges), dict(self.queues), list(self.bindings))


def base_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "tasks_exchange": "tasks.x",
        "tasks_queue": "tasks.q",
        "status_exchange": "status.x",
        "status_queue": "status.q",
    }
    kwargs.update(overrides)
    return kwargs


# -- Hypothesis strategies ----------------------------------------------------

words = st.text(alphabet="abcdefghij", min_size=1, max_size=5)
opt_pos = st.none() | st.integers(min_value=1, max_value=10**7)
opt_bool = st.none() | st.booleans()
opt_priority = st.none() | st.integers(min_value=1, max_value=255)
opt_qtype = st.sampled_from([None, "classic", "quorum"])


@st.composite
def task_options(draw: st.DrawFn) -> dict[str, Any]:
    use_streams = draw(st.booleans())
    work_queue_type = draw(st.sampled_from(["classic", "quorum"]))
    # a quorum queue has no priorities (refused at construction, tested apart)
    qtype = None if work_queue_type == "quorum" else draw(opt_qtype)
    opts: dict[str, Any] = {
        "dead_letter_exchange": draw(st.none() | st.just("dlx")),
        "prefetch_count": draw(st.integers(min_value=1, max_value=500)),
        "tasks_message_ttl_ms": draw(opt_pos),
        "task_consumer_timeout_ms": draw(opt_pos),
        "task_single_active_consumer": draw(opt_bool),
        "task_max_priority": None if "quorum" in (qtype, work_queue_type) else draw(opt_priority),
        "task_queue_type": qtype,
        "task_queue_kwargs": draw(st.dictionaries(st.just("x-custom"), words, max_size=1)),
        "status_use_streams": use_streams,
        "work_queue_type": work_queue_type,
        "delivery_limit": draw(opt_pos) if work_queue_type == "quorum" else None,
    }
    if use_streams:
        opts["status_stream_max_length_gb"] = draw(st.none() | st.integers(1, 50))
        opts["status_stream_max_segment_size_mb"] = draw(st.none() | st.integers(1, 500))
        opts["status_stream_initial_cluster_size"] = draw(st.none() | st.integers(1, 7))
    else:
        opts["status_queue_ttl_ms"] = draw(opt_pos)
    return opts


@st.composite
def workflow_topologies(draw: st.DrawFn) -> SharedStatusWorkflowTopology:
    names = draw(st.lists(words, min_size=1, max_size=5, unique=True))
    stages = []
    for i, name in enumerate(names):
        later = names[i + 1 :]
        nxt = draw(st.lists(st.sampled_from(later), unique=True)) if later else []
        stages.append(
            WorkflowStage(
                name=name,
                queue=f"wf.{name}",
                binding_keys=(f"{name}.in", *draw(st.sampled_from([(), ("all.#",), ("*.in",)]))),
                publish_routing_key=f"{name}.in",
                allowed_next_stages=tuple(nxt),
                max_retries=draw(st.none() | st.integers(0, 5)),
            )
        )
    return SharedStatusWorkflowTopology(
        workflow_exchange="wf.x",
        status_exchange="status.x",
        status_queue="status.q",
        stages=tuple(stages),
        dead_letter_exchange=draw(st.none() | st.just("dlx")),
        **_workflow_queue_options(draw),
    )


def _workflow_queue_options(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"work_queue_type": "quorum", "delivery_limit": draw(opt_pos)}
    qtype = draw(opt_qtype)
    priority = None if qtype == "quorum" else draw(opt_priority)
    return {"workflow_max_priority": priority, "workflow_queue_type": qtype}


@st.composite
def topologies(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["shared", "routed", "sharded", "routed_sharded", "workflow"]))
    if kind == "workflow":
        return draw(workflow_topologies())
    opts = base_kwargs(**draw(task_options()))
    if kind in ("routed", "routed_sharded"):
        opts["task_types"] = tuple(draw(st.lists(words, min_size=1, max_size=4)))
    else:
        opts["tasks_routing_key"] = draw(words)
    if kind in ("sharded", "routed_sharded"):
        opts["shard_count"] = draw(st.integers(1, 16))
        opts["aggregation_max_priority"] = draw(opt_priority)
    cls = {
        "shared": SharedTasksSharedStatusTopology,
        "routed": RoutedTasksSharedStatusTopology,
        "sharded": SharedTasksSharedStatusShardedAggregationTopology,
        "routed_sharded": RoutedTasksSharedStatusShardedAggregationTopology,
    }[kind]
    return cls(**opts)
