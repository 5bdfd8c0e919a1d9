"""``build_execution_graph``: a pure projection of what happened to a task.

Theory of operation. The inputs of one task (status history, observations,
DLQ records) are merged into one timeline, sorted by timestamp (ties: what
creates an attempt, then statuses, then retries and dead-letters, then input
order), and replayed in order while the builder remembers the latest attempt
(task attempt or stage attempt) and the retry or manual hand-off waiting for
the next attempt:

* ``TaskMessageReceived`` / ``AggregationMessageReceived`` → ``task_attempt``
  ``task-attempt:{task}:{n}``, reached by ``received_by`` from the pending
  retry, by ``manual_retry_to`` from the attempt that handed off, else by
  ``received_by`` from the task (or aggregation child) node;
* ``WorkflowMessagePublished`` → ``workflow_message`` ``workflow-message:{id}``,
  from the latest attempt of its origin stage (``stage_transitioned_to``) or
  from the task (``received_by``); ``WorkflowMessageReceived`` → the message
  (created if missing) ``entered_stage`` a ``stage_attempt``
  ``stage-attempt:{task}:{stage}:{n}``;
* a status → ``status_event`` ``status:{task}:{i}`` with ``published_status``
  from the latest attempt at or before it (else the task); ``manual_retrying``
  arms a ``manual_retry_to`` edge to the next attempt;
* ``*RetryScheduled`` → ``retry`` ``retry:{task}:{n}`` (``retried_as`` from the
  latest attempt), ``received_by`` to the next attempt;
* ``*DeadLetterPublished`` → ``dlq_record`` ``dlq:{task}:{n}``
  (``dead_lettered_to``); a DLQ record matching one (same reason and attempt)
  is merged into it, any other becomes ``dlq:{task}:record:{i}``.

Children (tasks whose status meta names this task as ``parent_task_id``) add
an ``aggregation_child`` node with ``aggregated_into`` to the root, and their
own timeline hangs off that node. Ids depend only on the inputs, so the same
inputs give the same graph, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from relayna.observability._graph_model import (
    ExecutionGraph,
    ExecutionGraphEdge,
    ExecutionGraphNode,
    ExecutionGraphSummary,
    parse_timestamp,
)

__all__ = ["TaskRecords", "build_execution_graph"]

_RECEIVED = frozenset({"TaskMessageReceived", "AggregationMessageReceived"})
_RETRY = frozenset({"ConsumerRetryScheduled", "AggregationRetryScheduled"})
_DEAD = frozenset({"ConsumerDeadLetterPublished", "AggregationDeadLetterPublished"})
_WF_PUBLISHED = "WorkflowMessagePublished"
_WF_RECEIVED = "WorkflowMessageReceived"

# rank at equal timestamps: attempts/messages first, then statuses, then retry/DLQ
_RANK_ATTEMPT, _RANK_STATUS, _RANK_AFTER, _RANK_RECORD = 0, 1, 2, 3
_OBSERVATION_RANK = {
    **dict.fromkeys(_RECEIVED, _RANK_ATTEMPT),
    _WF_PUBLISHED: _RANK_ATTEMPT,
    _WF_RECEIVED: _RANK_ATTEMPT,
    **dict.fromkeys(_RETRY, _RANK_AFTER),
    **dict.fromkeys(_DEAD, _RANK_AFTER),
}
_ROUTED_PREFIX = "routed_"


@attrs.frozen
class TaskRecords:
    """What the stores hold about one task.

    Any order works (the builder sorts by timestamp); entries with equal
    timestamps keep their input order, so pass histories oldest first.
    """

    task_id: str
    statuses: Sequence[Mapping[str, Any]] = ()
    observations: Sequence[Mapping[str, Any]] = ()
    dlq_records: Sequence[Mapping[str, Any]] = ()


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values (None, "", {})."""
    for key in [k for k, v in values.items() if v is None or v == "" or v == {}]:
        del values[key]
    return values


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class _Graph:
    """Nodes and edges being collected (ids unique; first writer wins)."""

    def __init__(self) -> None:
        self.nodes: dict[str, ExecutionGraphNode] = {}
        self.edges: list[ExecutionGraphEdge] = []
        self.task_types: set[str] = set()
        self.related: set[str] = set()

    def node(self, node: ExecutionGraphNode) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def edge(
        self,
        source: str,
        target: str,
        kind: str,
        ts: datetime | None,
        annotations: dict[str, Any] | None = None,
    ) -> None:
        self.edges.append(
            ExecutionGraphEdge(
                source=source, target=target, kind=kind, timestamp=ts, annotations=annotations or {}
            )
        )


class _Timeline:
    """Replays one task's merged timeline into the graph (see the module docstring)."""

    def __init__(self, graph: _Graph, records: TaskRecords, anchor: str, routed: bool) -> None:
        self.g = graph
        self.task_id = records.task_id
        self.anchor = anchor  # the task or aggregation-child node
        self.routed = routed
        self.latest: str | None = None  # latest attempt (task or stage)
        self.pending_retry: str | None = None
        self.pending_manual: tuple[str, datetime | None] | None = None
        self.attempts = 0
        self.retries = 0
        self.dead = 0
        self.statuses = 0
        self.stage_attempts: dict[str, int] = {}
        self.latest_of_stage: dict[str, str] = {}
        self.dlq_nodes: list[tuple[str, Any, Any, bool]] = []  # id, reason, attempt, merged
        self.records = records
        self.first_ts: datetime | None = None
        self.latest_status: tuple[datetime | None, str] | None = None

    def run(self) -> None:
        items: list[tuple[tuple[bool, datetime | None, int, int], str, Mapping[str, Any]]] = []
        seq = 0
        for obs in self.records.observations:
            kind = obs.get("event_type")
            rank = _OBSERVATION_RANK.get(kind) if isinstance(kind, str) else None
            if rank is None:
                continue
            ts = parse_timestamp(obs.get("timestamp"))
            items.append(((ts is not None, ts, rank, seq), "obs", obs))
            seq += 1
        for status in self.records.statuses:
            ts = parse_timestamp(status.get("timestamp"))
            items.append(((ts is not None, ts, _RANK_STATUS, seq), "status", status))
            seq += 1
        for record in self.records.dlq_records:
            ts = parse_timestamp(_record_time(record))
            items.append(((ts is not None, ts, _RANK_RECORD, seq), "record", record))
            seq += 1
        items.sort(key=lambda item: item[0])
        for key, source, data in items:
            ts = key[1]
            if ts is not None and self.first_ts is None:
                self.first_ts = ts
            if source == "status":
                self._status(data, ts)
            elif source == "record":
                self._record(data, ts)
            else:
                self._observation(data, ts)

    # -- observations ---------------------------------------------------------

    def _observation(self, obs: Mapping[str, Any], ts: datetime | None) -> None:
        kind = obs["event_type"]
        if kind in _RECEIVED:
            self._attempt(obs, ts)
        elif kind in _RETRY:
            self._retry(obs, ts)
        elif kind in _DEAD:
            self._dead_letter(obs, ts)
        elif kind == _WF_PUBLISHED:
            self._message_published(obs, ts)
        else:
            self._message_received(obs, ts)

    def _enter(self, target: str, ts: datetime | None) -> None:
        """Link a new attempt from whatever led to it."""
        if self.pending_retry is not None:
            self.g.edge(self.pending_retry, target, "received_by", ts)
            self.pending_retry = None
        elif self.pending_manual is not None:
            source, _ = self.pending_manual
            self.g.edge(source, target, "manual_retry_to", ts)
            self.pending_manual = None
        else:
            self.g.edge(self.anchor, target, "received_by", ts)

    def _attempt(self, obs: Mapping[str, Any], ts: datetime | None) -> None:
        self.attempts += 1
        task_type = _text(obs.get("task_type"))
        if task_type and self.routed:
            self.g.task_types.add(task_type)
        annotations = _clean(
            {
                "queue_name": obs.get("queue_name"),
                "consumer_name": obs.get("consumer_name"),
                "correlation_id": obs.get("correlation_id"),
                "retry_attempt": obs.get("retry_attempt"),
                "task_type": task_type if self.routed else None,
                "redelivered": obs.get("redelivered") or None,
                "trace_id": obs.get("trace_id"),
            }
        )
        node_id = self.g.node(
            ExecutionGraphNode(
                id=f"task-attempt:{self.task_id}:{self.attempts}",
                kind="task_attempt",
                task_id=self.task_id,
                label=f"{self.task_id} attempt {self.attempts}",
                timestamp=ts,
                annotations=annotations,
            )
        )
        self._enter(node_id, ts)
        self.latest = node_id

    def _retry(self, obs: Mapping[str, Any], ts: datetime | None) -> None:
        self.retries += 1
        node_id = self.g.node(
            ExecutionGraphNode(
                id=f"retry:{self.task_id}:{self.retries}",
                kind="retry",
                task_id=self.task_id,
                label=f"retry {self.retries}",
                timestamp=ts,
                annotations=_clean(
                    {
                        "queue_name": obs.get("retry_queue_name"),
                        "source_queue_name": obs.get("queue_name"),
                        "retry_attempt": obs.get("next_attempt"),
                        "max_retries": obs.get("max_retries"),
                        "delay_ms": obs.get("delay_ms"),
                        "reason": obs.get("reason"),
                    }
                ),
            )
        )
        self.g.edge(self.latest or self.anchor, node_id, "retried_as", ts)
        self.pending_retry = node_id

    def _dead_letter(self, obs: Mapping[str, Any], ts: datetime | None) -> None:
        self.dead += 1
        reason = _text(obs.get("reason")) or "dead_lettered"
        node_id = self.g.node(
            ExecutionGraphNode(
                id=f"dlq:{self.task_id}:{self.dead}",
                kind="dlq_record",
                task_id=self.task_id,
                label=reason,
                timestamp=ts,
                annotations=_clean(
                    {
                        "queue_name": obs.get("dead_letter_queue_name"),
                        "source_queue_name": obs.get("queue_name"),
                        "reason": reason,
                        "retry_attempt": obs.get("retry_attempt"),
                        "exception_type": obs.get("exception_type"),
                        "exception_message": obs.get("exception_message"),
                    }
                ),
            )
        )
        self.g.edge(self.latest or self.anchor, node_id, "dead_lettered_to", ts)
        self.dlq_nodes.append((node_id, reason, obs.get("retry_attempt"), False))

    def _message_node(self, obs: Mapping[str, Any], ts: datetime | None) -> str | None:
        message_id = _text(obs.get("message_id"))
        if message_id is None:
            return None
        node_id = f"workflow-message:{message_id}"
        if node_id in self.g.nodes:
            return node_id
        stage = _text(obs.get("stage")) or "?"
        self.g.node(
            ExecutionGraphNode(
                id=node_id,
                kind="workflow_message",
                task_id=self.task_id,
                label=stage,
                timestamp=ts,
                annotations=_clean(
                    {
                        "message_id": message_id,
                        "stage": stage,
                        "origin_stage": obs.get("origin_stage"),
                        "action": obs.get("action"),
                        "correlation_id": obs.get("correlation_id"),
                    }
                ),
            )
        )
        origin = _text(obs.get("origin_stage"))
        source = self.latest_of_stage.get(origin) if origin else None
        if source is not None:
            self.g.edge(source, node_id, "stage_transitioned_to", ts)
        else:
            self.g.edge(self.anchor, node_id, "received_by", ts)
        return node_id

    def _message_published(self, obs: Mapping[str, Any], ts: datetime | None) -> None:
        self._message_node(obs, ts)

    def _message_received(self, obs: Mapping[str, Any], ts: datetime | None) -> None:
        message = self._message_node(obs, ts)
        stage = _text(obs.get("stage"))
        if message is None or stage is None:
            return
        n = self.stage_attempts.get(stage, 0) + 1
        self.stage_attempts[stage] = n
        node_id = self.g.node(
            ExecutionGraphNode(
                id=f"stage-attempt:{self.task_id}:{stage}:{n}",
                kind="stage_attempt",
                task_id=self.task_id,
                label=f"{stage} attempt {n}",
                timestamp=ts,
                annotations=_clean(
                    {
                        "stage": stage,
                        "message_id": obs.get("message_id"),
                        "origin_stage": obs.get("origin_stage"),
                        "queue_name": obs.get("queue_name"),
                        "consumer_name": obs.get("consumer_name"),
                        "retry_attempt": obs.get("retry_attempt"),
                    }
                ),
            )
        )
        self.g.edge(message, node_id, "entered_stage", ts)
        if self.pending_retry is not None:
            self.g.edge(self.pending_retry, node_id, "received_by", ts)
            self.pending_retry = None
        self.latest = node_id
        self.latest_of_stage[stage] = node_id

    # -- statuses and DLQ records ---------------------------------------------

    def _status(self, status: Mapping[str, Any], ts: datetime | None) -> None:
        self.statuses += 1
        value = _text(status.get("status")) or "unknown"
        node_id = self.g.node(
            ExecutionGraphNode(
                id=f"status:{self.task_id}:{self.statuses}",
                kind="status_event",
                task_id=self.task_id,
                label=value,
                timestamp=ts,
                annotations=_clean(
                    {
                        "event_id": status.get("event_id"),
                        "message": status.get("message"),
                        "meta": status.get("meta") or None,
                    }
                ),
            )
        )
        source = self.latest or self.anchor
        self.g.edge(source, node_id, "published_status", ts)
        if value == "manual_retrying" and self.latest is not None:
            self.pending_manual = (self.latest, ts)
        meta = status.get("meta")
        if isinstance(meta, dict):
            parent = _text(meta.get("parent_task_id"))
            if parent and parent != self.task_id:
                self.g.related.add(parent)
        if ts is not None or self.latest_status is None:  # the timeline is sorted
            self.latest_status = (ts, value)

    def _record(self, record: Mapping[str, Any], ts: datetime | None) -> None:
        reason = _text(record.get("reason")) or "dead_lettered"
        attempt = record.get("retry_attempt")
        for index, (node_id, node_reason, node_attempt, merged) in enumerate(self.dlq_nodes):
            if merged or node_reason != reason:
                continue
            if attempt is not None and node_attempt is not None and attempt != node_attempt:
                continue
            node = self.g.nodes[node_id]
            extra = _clean({"dlq_id": record.get("dlq_id"), "record": dict(record)})
            self.g.nodes[node_id] = attrs.evolve(node, annotations={**node.annotations, **extra})
            self.dlq_nodes[index] = (node_id, node_reason, node_attempt, True)
            return
        index = sum(1 for n in self.g.nodes if n.startswith(f"dlq:{self.task_id}:record:")) + 1
        node_id = self.g.node(
            ExecutionGraphNode(
                id=f"dlq:{self.task_id}:record:{index}",
                kind="dlq_record",
                task_id=self.task_id,
                label=reason,
                timestamp=ts,
                annotations=_clean(
                    {
                        "dlq_id": record.get("dlq_id"),
                        "queue_name": record.get("queue_name"),
                        "source_queue_name": record.get("source_queue_name"),
                        "reason": reason,
                        "retry_attempt": attempt,
                        "record": dict(record),
                    }
                ),
            )
        )
        self.g.edge(self.latest or self.anchor, node_id, "dead_lettered_to", ts)


def _record_time(record: Mapping[str, Any]) -> Any:
    for key in ("dead_lettered_at", "timestamp", "created_at", "failed_at"):
        if record.get(key) is not None:
            return record[key]
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _order_key(ts: datetime | None) -> tuple[bool, datetime]:
    return (ts is not None, _EPOCH if ts is None else ts)


def build_execution_graph(
    task: TaskRecords,
    *,
    topology_kind: str,
    children: Sequence[TaskRecords] = (),
    annotations: Mapping[str, Any] | None = None,
) -> ExecutionGraph:
    """Build the execution graph of ``task`` (and its ``children``); no I/O.

    Args:
        task: the requested task's status history, observations and DLQ records.
        topology_kind: the service's topology kind (``topology_kind(topology)``);
            routed kinds annotate attempts with ``task_type``.
        children: the same for each child task (aggregation), in any order.
        annotations: graph-level annotations to add (e.g. a children cut).

    ``summary.graph_completeness`` is ``"full"`` when any observation was
    given, else ``"partial"`` (rebuilt from statuses and DLQ records only).
    """
    routed = topology_kind.startswith(_ROUTED_PREFIX)
    graph = _Graph()
    root = graph.node(
        ExecutionGraphNode(
            id=f"task:{task.task_id}", kind="task", task_id=task.task_id, label=task.task_id
        )
    )
    timeline = _Timeline(graph, task, root, routed)
    timeline.run()
    observed = bool(task.observations)
    for child in sorted(children, key=lambda c: c.task_id):
        if child.task_id == task.task_id:
            continue
        observed = observed or bool(child.observations)
        anchor = f"aggregation_child:{child.task_id}"
        child_timeline = _Timeline(graph, child, anchor, routed)
        child_timeline.run()
        graph.nodes[anchor] = ExecutionGraphNode(
            id=anchor,
            kind="aggregation_child",
            task_id=child.task_id,
            label=child.task_id,
            timestamp=child_timeline.first_ts,
        )
        graph.edge(anchor, root, "aggregated_into", child_timeline.first_ts)
        graph.related.add(child.task_id)
    graph.related.discard(task.task_id)

    nodes = sorted(  # the requested task first, then by time
        graph.nodes.values(), key=lambda n: (n.id != root, *_order_key(n.timestamp), n.id)
    )
    edges = sorted(
        graph.edges, key=lambda e: (*_order_key(e.timestamp), e.source, e.target, e.kind)
    )
    stamps = [n.timestamp for n in nodes if n.timestamp is not None]
    stamps += [e.timestamp for e in edges if e.timestamp is not None]
    started = min(stamps) if stamps else None
    latest = timeline.latest_status
    ended = latest[0] if latest is not None and latest[0] is not None else None
    if ended is None and stamps:
        ended = max(stamps)
    graph_annotations: dict[str, Any] = {}
    if graph.task_types:
        graph_annotations["task_types"] = sorted(graph.task_types)
    graph_annotations.update(annotations or {})
    return ExecutionGraph(
        task_id=task.task_id,
        topology_kind=topology_kind,
        summary=ExecutionGraphSummary(
            status=latest[1] if latest is not None else None,
            started_at=started,
            ended_at=ended,
            graph_completeness="full" if observed else "partial",
        ),
        nodes=tuple(nodes),
        edges=tuple(edges),
        annotations=graph_annotations,
        related_task_ids=tuple(sorted(graph.related)),
    )
