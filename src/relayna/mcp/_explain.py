"""``explain_task`` as a pure function: status history + DLQ records + graph → an explanation.

The reads happen elsewhere (the server's tool handler); this module only
decides what the facts mean, so it is tested by feeding facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TERMINAL_STATUSES", "explain"]

#: The statuses after which a task does nothing more by itself.
TERMINAL_STATUSES = frozenset({"completed", "failed"})


def _attempts(history: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """``(attempts, retries)`` from the lifecycle statuses (oldest first)."""
    attempts = sum(1 for e in history if e.get("status") == "processing")
    retries = sum(1 for e in history if e.get("status") == "retrying")
    return max(attempts, retries + (1 if attempts else 0)), retries


def _state(latest: Mapping[str, Any] | None, dead_letters: Sequence[Mapping[str, Any]]) -> str:
    if latest is None:
        return "dead_lettered" if dead_letters else "unknown"
    status = str(latest.get("status", "unknown"))
    if status == "failed" and any(d.get("state") == "dead_lettered" for d in dead_letters):
        return "dead_lettered"
    return status


def _failure_line(record: Mapping[str, Any]) -> str:
    kind = record.get("exception_type") or "an error"
    reason = record.get("reason") or "unknown reason"
    attempt = record.get("retry_attempt")
    limit = record.get("max_retries")
    tries = f" after retry {attempt} of {limit}" if limit is not None else ""
    return (
        f"dead-lettered to {record.get('queue_name')} ({reason}: {kind}){tries} "
        f"at {record.get('dead_lettered_at')}; record {record.get('dlq_id')} is "
        f"{record.get('state')}"
    )


def _next_steps(state: str, dead_letters: Sequence[Mapping[str, Any]]) -> list[str]:
    steps: list[str] = []
    live = [d for d in dead_letters if d.get("state") == "dead_lettered"]
    if live:
        newest = live[0]
        if newest.get("payload_available", True):
            steps.append(
                f"Fix the cause of {newest.get('exception_type') or newest.get('reason')}, then "
                f"replay_dlq_message(dlq_id={newest.get('dlq_id')!r}) or "
                f"retry_failed_task(task_id={newest.get('task_id')!r})."
            )
        else:
            steps.append("The payload was not kept: publish the task again with publish_task.")
        if newest.get("unconfirmed_republish"):
            steps.append(
                "An earlier republish did not confirm: check the status before force=true."
            )
    elif state == "retrying":
        steps.append("The task is waiting for its next attempt: wait_for_task follows it.")
    elif state in ("processing", "queued", "pending"):
        steps.append("The task is in flight: wait_for_task follows it to the end.")
    elif state == "unknown":
        steps.append("No store knows this task: check the id, or whether its records expired.")
    return steps


def explain(
    task_id: str,
    history: Sequence[Mapping[str, Any]],
    dead_letters: Sequence[Mapping[str, Any]],
    graph: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The ``explain_task`` answer.

    Args:
        history: the task's status events, oldest first.
        dead_letters: its DLQ record summaries, newest first.
        graph: its execution graph (``ExecutionGraph.to_dict()``) or None.
    """
    latest = history[-1] if history else None
    attempts, retries = _attempts(history)
    state = _state(latest, dead_letters)
    found = bool(history or dead_letters or graph)
    lines: list[str] = []
    if not found:
        lines.append(f"Task {task_id} is unknown: no status, observation or dead letter.")
    else:
        status = latest.get("status") if latest else None
        lines.append(
            f"Task {task_id} is {state}" + (f" (latest status {status!r})." if status else ".")
        )
        if latest is not None and latest.get("message"):
            lines.append(f"Latest message: {str(latest['message']).rstrip('.')}.")
        if attempts:
            lines.append(f"It ran {attempts} time(s) with {retries} retry(ies).")
        for record in dead_letters:
            lines.append("It was " + _failure_line(record) + ".")
        if graph is not None:
            summary = graph.get("summary") or {}
            children = sum(
                1 for n in graph.get("nodes", ()) if n.get("kind") == "aggregation_child"
            )
            lines.append(
                f"Execution graph: {len(graph.get('nodes', ()))} nodes, "
                f"{len(graph.get('edges', ()))} edges"
                + (f", {children} child task(s)" if children else "")
                + f"; duration {summary.get('duration_ms')} ms, "
                f"{summary.get('graph_completeness')} graph."
            )
    return {
        "task_id": task_id,
        "found": found,
        "state": state,
        "summary": " ".join(lines),
        "latest_status": dict(latest) if latest is not None else None,
        "attempts": attempts,
        "retries": retries,
        "dead_letters": [dict(d) for d in dead_letters],
        "graph": None
        if graph is None
        else {
            "summary": graph.get("summary"),
            "nodes": len(graph.get("nodes", ())),
            "edges": len(graph.get("edges", ())),
            "annotations": graph.get("annotations", {}),
        },
        "next_steps": _next_steps(state, dead_letters),
    }
