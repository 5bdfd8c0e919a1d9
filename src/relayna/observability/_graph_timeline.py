"""The timeline replay behind :func:`build_execution_graph` (one task at a time).

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
* ``WorkflowFanInArrived`` → the branch message (created if missing), which
  waits at the join; ``WorkflowFanInReleased`` → one ``stage_attempt`` of the
  join stage, reached by ``entered_stage`` from every joined branch message
  and by ``stage_transitioned_to`` from the latest attempt of every branch's
  origin stage: a join is one attempt with several incoming transitions;
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
from datetime import datetime
from operator import itemgetter
from typing import Any

import attrs

from relayna.observability._graph_model import (
    ExecutionGraphEdge,
    ExecutionGraphNode,
    parse_timestamp,
)

__all__ = ["ROUTED_PREFIX", "TaskRecords", "TaskTimeline", "TimelineGraph"]

_RECEIVED = frozenset({"TaskMessageReceived", "AggregationMessageReceived"})
_RETRY = frozenset({"ConsumerRetryScheduled", "AggregationRetryScheduled"})
_DEAD = frozenset({"ConsumerDeadLetterPublished", "AggregationDeadLetterPublished"})
_WF_PUBLISHED = "WorkflowMessagePublished"
_WF_RECEIVED = "WorkflowMessageReceived"
_WF_ARRIVED = "WorkflowFanInArrived"
_WF_RELEASED = "WorkflowFanInReleased"

# rank at equal timestamps: attempts/messages first, then statuses, then retry/DLQ
_RANK_ATTEMPT, _RANK_STATUS, _RANK_AFTER, _RANK_RECORD = 0, 1, 2, 3
_OBSERVATION_RANK = {
    **dict.fromkeys(_RECEIVED, _RANK_ATTEMPT),
    _WF_PUBLISHED: _RANK_ATTEMPT,
    _WF_RECEIVED: _RANK_ATTEMPT,
    _WF_ARRIVED: _RANK_ATTEMPT,
    _WF_RELEASED: _RANK_ATTEMPT,
    **dict.fromkeys(_RETRY, _RANK_AFTER),
    **dict.fromkeys(_DEAD, _RANK_AFTER),
}
ROUTED_PREFIX = "routed_"


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
    """Drop unset values (None and ""); callers pass empty containers as None."""
    return {k: v for k, v in values.items() if v is not None and v != ""}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class TimelineGraph:
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
        self.edges.append(ExecutionGraphEdge(source, target, kind, ts, annotations or {}))


class TaskTimeline:
    """Replays one task's merged timeline into the graph (see the module docstring)."""

    def __init__(
        self, graph: TimelineGraph, records: TaskRecords, anchor: str, routed: bool
    ) -> None:
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
        items.sort(key=itemgetter(0))
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
        elif kind == _WF_PUBLISHED or kind == _WF_ARRIVED:
            self._message_node(obs, ts)
        elif kind == _WF_RELEASED:
            self._join_released(obs, ts)
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
                f"task-attempt:{self.task_id}:{self.attempts}",
                "task_attempt",
                self.task_id,
                f"{self.task_id} attempt {self.attempts}",
                ts,
                annotations,
            )
        )
        self._enter(node_id, ts)
        self.latest = node_id

    def _retry(self, obs: Mapping[str, Any], ts: datetime | None) -> None:
        self.retries += 1
        node_id = self.g.node(
            ExecutionGraphNode(
                f"retry:{self.task_id}:{self.retries}",
                "retry",
                self.task_id,
                f"retry {self.retries}",
                ts,
                _clean(
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
                f"dlq:{self.task_id}:{self.dead}",
                "dlq_record",
                self.task_id,
                reason,
                ts,
                _clean(
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
                node_id,
                "workflow_message",
                self.task_id,
                stage,
                ts,
                _clean(
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

    def _message_received(self, obs: Mapping[str, Any], ts: datetime | None) -> None:
        message = self._message_node(obs, ts)
        stage = _text(obs.get("stage"))
        if message is None or stage is None:
            return
        self._stage_attempt(stage, obs, ts, [message])

    def _join_released(self, obs: Mapping[str, Any], ts: datetime | None) -> None:
        stage = _text(obs.get("stage"))
        ids = obs.get("branch_message_ids")
        origins = obs.get("branch_origin_stages")
        if stage is None or not isinstance(ids, list | tuple):
            return
        if not isinstance(origins, list | tuple) or len(origins) != len(ids):
            origins = [None] * len(ids)
        sources: list[tuple[str | None, str]] = []  # (origin attempt, message node)
        for message_id, origin in zip(ids, origins, strict=True):
            origin_stage = _text(origin)
            branch = {"message_id": message_id, "stage": stage, "origin_stage": origin_stage}
            node = self._message_node(branch, ts)
            if node is not None:
                attempt = self.latest_of_stage.get(origin_stage) if origin_stage else None
                sources.append((attempt, node))
        join = self._stage_attempt(stage, obs, ts, [node for _, node in sources])
        for attempt, node in sources:
            if attempt is not None:
                message_id = self.g.nodes[node].annotations.get("message_id")
                self.g.edge(
                    attempt,
                    join,
                    "stage_transitioned_to",
                    ts,
                    {"join": True, "message_id": message_id},
                )

    def _stage_attempt(
        self, stage: str, obs: Mapping[str, Any], ts: datetime | None, messages: list[str]
    ) -> str:
        n = self.stage_attempts.get(stage, 0) + 1
        self.stage_attempts[stage] = n
        node_id = self.g.node(
            ExecutionGraphNode(
                f"stage-attempt:{self.task_id}:{stage}:{n}",
                "stage_attempt",
                self.task_id,
                f"{stage} attempt {n}",
                ts,
                _clean(
                    {
                        "stage": stage,
                        "message_id": obs.get("message_id"),
                        "origin_stage": obs.get("origin_stage"),
                        "queue_name": obs.get("queue_name"),
                        "consumer_name": obs.get("consumer_name"),
                        "retry_attempt": obs.get("retry_attempt"),
                        "join_branches": list(obs["branches"]) if obs.get("branches") else None,
                    }
                ),
            )
        )
        for message in messages:
            self.g.edge(message, node_id, "entered_stage", ts)
        if self.pending_retry is not None:
            self.g.edge(self.pending_retry, node_id, "received_by", ts)
            self.pending_retry = None
        self.latest = node_id
        self.latest_of_stage[stage] = node_id
        return node_id

    # -- statuses and DLQ records ---------------------------------------------

    def _status(self, status: Mapping[str, Any], ts: datetime | None) -> None:
        self.statuses += 1
        value = _text(status.get("status")) or "unknown"
        node_id = self.g.node(
            ExecutionGraphNode(
                f"status:{self.task_id}:{self.statuses}",
                "status_event",
                self.task_id,
                value,
                ts,
                _clean(
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
            extra = _clean({"dlq_id": record.get("dlq_id"), "record": dict(record) or None})
            node.annotations = {**node.annotations, **extra}
            self.dlq_nodes[index] = (node_id, node_reason, node_attempt, True)
            return
        index = sum(1 for n in self.g.nodes if n.startswith(f"dlq:{self.task_id}:record:")) + 1
        node_id = self.g.node(
            ExecutionGraphNode(
                f"dlq:{self.task_id}:record:{index}",
                "dlq_record",
                self.task_id,
                reason,
                ts,
                _clean(
                    {
                        "dlq_id": record.get("dlq_id"),
                        "queue_name": record.get("queue_name"),
                        "source_queue_name": record.get("source_queue_name"),
                        "reason": reason,
                        "retry_attempt": attempt,
                        "record": dict(record) or None,
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
