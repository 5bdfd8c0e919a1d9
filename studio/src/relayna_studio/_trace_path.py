"""The trace path of a task (pure): its execution graph joined with DLQ items, Studio events and spans.

Start: the graph's nodes and edges, or without a graph a ``task:<id>`` node
plus one ``status_event`` node per history event (``published_status``
edges). Then:

* **DLQ items** attach to the ``dlq_record`` node that carries the same
  ``dlq_id``; otherwise they become a new ``dlq_record`` node with a
  ``dead_lettered_to`` edge from the latest attempt (or the task).
* **Studio events** (up to :data:`MAX_EVENTS`) attach to the best node: a
  status event to the status node with its ``event_id`` (else the first
  with its status); a dead-letter observation to the DLQ node (with its
  ``dlq_id`` when it has one); any other observation to the attempt or
  stage node with its stage or queue and, when it has one, its
  ``retry_attempt``; else the task node. Each node lists its events'
  ``dedupe_key``s.
* **Spans** of the task (``relayna.task_id``): consumer spans attach to the
  task's attempt nodes in time order, producer spans that publish a status
  to the status nodes in time order, the hub's writes to the status node
  of the event they wrote (``messaging.message.id``, else in time order); any other span becomes a ``span`` node with a ``span_child`` edge
  from its parent span's node (or from the task node).

``summary`` counts what was joined; ``log_metadata`` gives the ids to search
logs with, and a suggested free-text query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_EVENTS", "build_trace_path"]

MAX_EVENTS = 200
_ATTEMPT_KINDS = ("task_attempt", "stage_attempt")


def _node(
    node_id: str, kind: str, task_id: str, label: str, timestamp: Any = None
) -> dict[str, Any]:
    return {
        "id": node_id,
        "kind": kind,
        "task_id": task_id,
        "label": label,
        "timestamp": timestamp,
        "annotations": {},
        "span_ids": [],
        "event_keys": [],
        "dlq_ids": [],
    }


def _base(
    task_id: str, graph: object, history: list[Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if isinstance(graph, Mapping) and isinstance(graph.get("nodes"), list):
        nodes = []
        for raw in graph["nodes"]:
            if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
                node = _node(raw["id"], str(raw.get("kind") or ""), str(raw.get("task_id") or task_id),
                             str(raw.get("label") or raw["id"]), raw.get("timestamp"))  # fmt: skip
                node["state"] = raw.get("state")
                node["annotations"] = dict(raw.get("annotations") or {})
                nodes.append(node)
        edges = [
            {k: e.get(k) for k in ("source", "target", "kind", "timestamp", "state")}
            for e in graph.get("edges") or []
            if isinstance(e, Mapping)
        ]
        return nodes, edges
    nodes = [_node(f"task:{task_id}", "task", task_id, task_id)]
    edges = []
    for i, event in enumerate(e for e in history if isinstance(e, Mapping)):
        status = str(event.get("status") or "")
        node = _node(
            f"status:{task_id}:{i}", "status_event", task_id, status, event.get("timestamp")
        )
        node["annotations"] = {"status": status, "event_id": event.get("event_id")}
        nodes.append(node)
        edges.append({"source": f"task:{task_id}", "target": node["id"], "kind": "published_status",
                      "timestamp": event.get("timestamp"), "state": "traversed"})  # fmt: skip
    return nodes, edges


def _time(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _latest_attempt(nodes: list[dict[str, Any]], task_node: dict[str, Any]) -> dict[str, Any]:
    attempts = [n for n in nodes if n["kind"] in _ATTEMPT_KINDS]
    return max(attempts, key=lambda n: _time(n["timestamp"])) if attempts else task_node


def _status_of(node: Mapping[str, Any]) -> str | None:
    annotations = node.get("annotations") or {}
    status = annotations.get("status") if isinstance(annotations, Mapping) else None
    return str(status) if status else (node["label"] if node["kind"] == "status_event" else None)


def build_trace_path(
    task_id: str,
    *,
    graph: object,
    history: list[Any],
    dlq_items: list[Any],
    events: list[Any],
    spans: list[dict[str, Any]],
    correlation_id: str | None = None,
) -> dict[str, Any]:
    nodes, edges = _base(task_id, graph, history)
    warnings: list[str] = []
    task_node = next(
        (n for n in nodes if n["kind"] in ("task", "root") or n["id"] == f"task:{task_id}"), None
    )
    if task_node is None:
        task_node = _node(f"task:{task_id}", "task", task_id, task_id)
        nodes.insert(0, task_node)
    by_id = {n["id"]: n for n in nodes}

    for i, item in enumerate(d for d in dlq_items if isinstance(d, Mapping)):
        dlq_id = str(item.get("dlq_id") or item.get("failure_id") or f"item-{i}")
        target = next(
            (n for n in nodes if n["kind"] == "dlq_record" and dlq_id in (
                str((n["annotations"].get("record") or {}).get("dlq_id", "")), str(n["annotations"].get("dlq_id", "")),
            )),
            None,
        )  # fmt: skip
        if target is None:
            target = _node(f"dlq:{task_id}:studio:{i}", "dlq_record", task_id,
                           str(item.get("queue_name") or "dlq"), item.get("dead_lettered_at"))  # fmt: skip
            nodes.append(target)
            by_id[target["id"]] = target
            source = _latest_attempt(nodes, task_node)
            edges.append({"source": source["id"], "target": target["id"], "kind": "dead_lettered_to",
                          "timestamp": item.get("dead_lettered_at"), "state": "blocked"})  # fmt: skip
        target["dlq_ids"].append(dlq_id)

    kept = [e for e in events if isinstance(e, Mapping)][:MAX_EVENTS]
    if len(events) > MAX_EVENTS:
        warnings.append(f"only the newest {MAX_EVENTS} Studio events are joined")
    for event in kept:
        _attach_event(event, nodes, task_node)

    matched = _attach_spans(task_id, spans, nodes, edges, task_node, by_id)
    edges.sort(
        key=lambda e: (_time(e.get("timestamp")), str(e.get("source")), str(e.get("target")))
    )
    return {
        "summary": {
            "task_id": task_id,
            "node_count": len(nodes),
            "edge_count": len(edges),
            "span_count": len(spans),
            "matched_span_count": matched,
            "event_count": len(kept),
            "dlq_message_count": len(dlq_items),
            "trace_ids": sorted({s["trace_id"] for s in spans}),
        },
        "nodes": nodes,
        "edges": edges,
        "spans": spans,
        "events": kept,
        "dlq_messages": dlq_items,
        "log_metadata": {
            "task_id": task_id,
            "correlation_id": correlation_id,
            "suggested_query": task_id if not correlation_id else f"{task_id} OR {correlation_id}",
        },
        "warnings": warnings,
    }


def _attach_event(
    event: Mapping[str, Any], nodes: list[dict[str, Any]], task_node: dict[str, Any]
) -> None:
    payload = event.get("payload") if isinstance(event.get("payload"), Mapping) else {}
    assert isinstance(payload, Mapping)
    status = payload.get("status")
    attempt = payload.get("retry_attempt")
    kind = str(event.get("event_type") or "")
    is_status = event.get("source_kind") == "status" or (status and attempt is None)
    target = None
    if is_status and status:
        statuses = [n for n in nodes if n["kind"] == "status_event"]
        event_id = payload.get("event_id") or event.get("event_id")
        target = next(
            (n for n in statuses if event_id and n["annotations"].get("event_id") == event_id),
            None,
        ) or next((n for n in statuses if _status_of(n) == status), None)
    if target is None and ("dead" in kind.lower() or "dlq" in kind.lower()):
        dlq = [n for n in nodes if n["kind"] == "dlq_record"]
        dlq_id = payload.get("dlq_id")
        target = next((n for n in dlq if dlq_id and dlq_id in n["dlq_ids"]), None) or next(
            iter(dlq), None
        )
    if target is None:
        target = _attempt_of(payload, nodes)
    (target or task_node)["event_keys"].append(event.get("dedupe_key"))


def _attempt_of(payload: Mapping[str, Any], nodes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The attempt (or stage) node an observation came from: same stage or queue, and
    the same ``retry_attempt`` when the observation has one."""
    stage = payload.get("stage")
    queue = payload.get("queue") or payload.get("queue_name")
    if not (stage or queue):
        return None
    candidates = [
        n for n in nodes if n["kind"] in _ATTEMPT_KINDS
        and (stage in (n["label"], n["annotations"].get("stage"))
             or queue in (n["label"], n["annotations"].get("queue"),
                          n["annotations"].get("queue_name")))
    ]  # fmt: skip
    attempt = payload.get("retry_attempt")
    exact = [n for n in candidates if attempt is not None
             and n["annotations"].get("retry_attempt") == attempt]  # fmt: skip
    found = exact or candidates
    return found[0] if found else None


def _attach_spans(
    task_id: str,
    spans: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]],
    task_node: dict[str, Any],
    by_id: dict[str, dict[str, Any]],
) -> int:
    ordered = sorted(spans, key=lambda s: (s["start_time"] or "", s["span_id"]))
    attempts = sorted((n for n in nodes if n["kind"] in _ATTEMPT_KINDS and n["task_id"] == task_id),
                      key=lambda n: _time(n["timestamp"]))  # fmt: skip
    statuses = sorted((n for n in nodes if n["kind"] == "status_event" and n["task_id"] == task_id),
                      key=lambda n: _time(n["timestamp"]))  # fmt: skip
    span_node: dict[str, str] = {}
    matched = 0
    consumers = producers = hubs = 0
    for span in ordered:
        mine = span["attributes"].get("relayna.task_id") == task_id
        target = None
        if mine and span["kind"] == "consumer" and "status_hub" in span["name"]:
            event_id = span["attributes"].get("messaging.message.id")
            target = next((n for n in statuses if event_id
                           and n["annotations"].get("event_id") == event_id), None)  # fmt: skip
            if target is None:
                target = statuses[hubs] if hubs < len(statuses) else None
            hubs += 1
        elif mine and span["kind"] == "consumer":
            target = attempts[consumers] if consumers < len(attempts) else None
            consumers += 1
        elif mine and span["kind"] == "producer" and "status" in span["name"]:
            target = statuses[producers] if producers < len(statuses) else None
            producers += 1
        elif mine and span["kind"] == "producer":
            target = task_node
        if target is not None:
            target["span_ids"].append(span["span_id"])
            span_node[span["span_id"]] = target["id"]
            matched += 1
            continue
        node = _node(f"span:{span['span_id']}", "span", task_id, span["name"], span["start_time"])
        node["span_ids"].append(span["span_id"])
        nodes.append(node)
        by_id[node["id"]] = node
        span_node[span["span_id"]] = node["id"]
        parent = span_node.get(span.get("parent_span_id") or "", task_node["id"])
        edges.append({"source": parent, "target": node["id"], "kind": "span_child",
                      "timestamp": span["start_time"], "state": "traversed"})  # fmt: skip
    return matched
