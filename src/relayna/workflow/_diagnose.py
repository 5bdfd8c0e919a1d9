"""``explain_stall``: why a run is not finished, from its run state (pure).

Reasons, each ``{code, stage, message, details}``:

==========================  ================================================
``never_started``           no run state (never entered, or expired), or no
                            stage ran a handler yet
``stage_failed``            a stage was rejected (no retry policy)
``stage_dead_lettered``     a stage used up its retries (DLQ)
``stage_retrying``          a stage failed and waits for its retry
``fan_in_waiting``          a join waits for branches (named when known)
``fan_in_expired``          a join waited longer than its TTL: its partial
                            state is gone
``no_terminal_stage``       no terminal stage completed within the expected
                            time (``expected_within``, else the sum of the
                            stages' ``sla_ms`` when every stage has one), or
                            nothing is left to run and none completed
==========================  ================================================
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from relayna.errors import TopologyError
from relayna.topology import SharedStatusWorkflowTopology

from ._state import WorkflowRunState, WorkflowStageState

__all__ = ["StallReason", "WorkflowDiagnosis", "explain_stall"]


@attrs.frozen
class StallReason:
    code: str
    stage: str | None
    message: str
    details: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "stage": self.stage,
            "message": self.message,
            "details": dict(self.details),
        }


@attrs.frozen
class WorkflowDiagnosis:
    """``stalled``: the run is not completed and something explains why."""

    task_id: str
    status: str
    stalled: bool
    reasons: tuple[StallReason, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "status": self.status,
            "stalled": self.stalled,
            "reasons": [r.to_dict() for r in self.reasons],
        }


def _expected_from_sla(topology: SharedStatusWorkflowTopology | None) -> timedelta | None:
    if topology is None or not topology.stages:
        return None
    slas = [s.sla_ms for s in topology.stages]
    if any(v is None for v in slas):
        return None
    return timedelta(milliseconds=sum(v for v in slas if v is not None))


def _missing_branches(
    stage: WorkflowStageState, topology: SharedStatusWorkflowTopology | None
) -> list[str]:
    if topology is None or stage.fan_in is None:
        return []
    try:
        join = topology.stage(stage.name).join
    except TopologyError:
        return []
    if join is None or join.branch_key != "origin_stage":
        return []
    return [s for s in join.expected_stages if s not in stage.fan_in.branches]


def _stage_reasons(
    stage: WorkflowStageState, topology: SharedStatusWorkflowTopology | None, now: datetime
) -> list[StallReason]:
    error = stage.last_error or {}
    reason = error.get("reason")
    if stage.status == "dead_lettered":
        return [
            StallReason(
                "stage_dead_lettered",
                stage.name,
                f"stage {stage.name!r} was dead-lettered after {stage.attempts} attempt(s)"
                + (f" ({reason})" if reason else ""),
                {"attempts": stage.attempts, "error": error},
            )
        ]
    if stage.status == "failed":
        return [
            StallReason(
                "stage_failed",
                stage.name,
                f"stage {stage.name!r} failed" + (f" ({reason})" if reason else ""),
                {"attempts": stage.attempts, "error": error},
            )
        ]
    if stage.status == "retrying":
        return [
            StallReason(
                "stage_retrying",
                stage.name,
                f"stage {stage.name!r} failed attempt {stage.attempts} and waits for its retry"
                + (f" ({reason})" if reason else ""),
                {"attempts": stage.attempts, "error": error},
            )
        ]
    fan = stage.fan_in
    if stage.status == "waiting" and fan is not None:
        details: dict[str, Any] = {
            "arrived": fan.arrived,
            "expected": fan.expected,
            "branches": list(fan.branches),
        }
        missing = _missing_branches(stage, topology)
        if missing:
            details["missing"] = missing
        if fan.expires_at is not None and fan.expires_at <= now:
            return [
                StallReason(
                    "fan_in_expired",
                    stage.name,
                    f"join {stage.name!r} expired with {fan.arrived} of {fan.expected} "
                    "branches: its partial state is gone",
                    details,
                )
            ]
        waiting_for = f": waiting for {', '.join(missing)}" if missing else ""
        return [
            StallReason(
                "fan_in_waiting",
                stage.name,
                f"join {stage.name!r} has {fan.arrived} of {fan.expected} branches{waiting_for}",
                details,
            )
        ]
    return []


def explain_stall(
    run_state: WorkflowRunState | None,
    *,
    task_id: str | None = None,
    topology: SharedStatusWorkflowTopology | None = None,
    now: datetime | None = None,
    expected_within: timedelta | None = None,
) -> WorkflowDiagnosis:
    """Why ``run_state`` has not finished (no I/O).

    Args:
        run_state: the run, or None when no state exists for the task.
        task_id: the task's id (needed when ``run_state`` is None).
        topology: names the branches a join still waits for, and gives the
            default expected time (the sum of the stages' ``sla_ms``).
        now: the time to judge expiries and durations at (default: now).
        expected_within: how long a run may take before "no terminal stage"
            is reported while stages are still active.
    """
    now = now or datetime.now(UTC)
    if run_state is None:
        return WorkflowDiagnosis(
            task_id=task_id or "",
            status="unknown",
            stalled=True,
            reasons=(
                StallReason(
                    "never_started",
                    None,
                    "no run state: the workflow never started for this task (or its state expired)",
                ),
            ),
        )
    if run_state.terminal:
        return WorkflowDiagnosis(run_state.task_id, run_state.status, False, ())
    reasons: list[StallReason] = []
    if not any(s.attempts or s.fan_in is not None for s in run_state.stages.values()):
        queued = [s.name for s in run_state.stages.values() if s.status == "queued"]
        reasons.append(
            StallReason(
                "never_started",
                queued[0] if queued else None,
                "no stage has run yet"
                + (f" ({', '.join(queued)} queued, no worker took it)" if queued else ""),
                {"queued": queued},
            )
        )
    for stage in run_state.stages.values():
        reasons.extend(_stage_reasons(stage, topology, now))
    limit = expected_within or _expected_from_sla(topology)
    started = run_state.created_at
    overdue = limit is not None and started is not None and now - started > limit
    if not run_state.current_stages or overdue:
        message = "no terminal stage completed"
        details: dict[str, Any] = {"current_stages": list(run_state.current_stages)}
        if overdue and limit is not None:
            message += f" within {limit.total_seconds():g}s"
            details["expected_within_seconds"] = limit.total_seconds()
        elif not run_state.current_stages:
            message += " and no stage has work left"
        reasons.append(StallReason("no_terminal_stage", None, message, details))
    stalled = bool(reasons) and (overdue or not run_state.current_stages or _blocked(reasons))
    return WorkflowDiagnosis(run_state.task_id, run_state.status, stalled, tuple(reasons))


def _blocked(reasons: list[StallReason]) -> bool:
    return any(
        r.code in ("stage_failed", "stage_dead_lettered", "fan_in_expired", "never_started")
        for r in reasons
    )
