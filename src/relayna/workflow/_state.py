"""The run-state read model: what the run hash says, as frozen values.

:func:`WorkflowRunState.from_hash` parses the hash written by the workflow
scripts (fields ``run``, ``s:{stage}``, ``m:{stage}``, ``l:{message_id}``);
a field that does not decode is skipped, never an error (the hash is data
other versions may have written).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import orjson

__all__ = [
    "ACTIVE_STATUSES",
    "FAILED_STATUSES",
    "FanInProgress",
    "LineageMessage",
    "WorkflowRunState",
    "WorkflowStageState",
]

#: A stage in one of these still has work to do (the run's "current" stages).
ACTIVE_STATUSES = frozenset({"queued", "running", "waiting", "retrying"})
#: A stage in one of these stopped on an error.
FAILED_STATUSES = frozenset({"failed", "dead_lettered"})


def _time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000.0, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _strs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def _error(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    out = {k: v for k, v in value.items() if k != "at"}
    out["at"] = _iso(_time(value.get("at")))
    return out


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


@attrs.frozen
class FanInProgress:
    """Arrivals at a join: ``branches`` in arrival order, of ``expected``."""

    arrived: int
    expected: int
    branches: tuple[str, ...]
    expires_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arrived": self.arrived,
            "expected": self.expected,
            "branches": list(self.branches),
            "expires_at": _iso(self.expires_at),
        }


@attrs.frozen
class WorkflowStageState:
    """One stage of a run.

    ``status``: ``queued`` (a message was published to it), ``running``,
    ``waiting`` (a join short of branches), ``retrying``, ``completed``,
    ``dead_lettered`` or ``failed``. ``attempts`` counts handler runs,
    ``deliveries`` every delivery (duplicates and join arrivals included).
    """

    name: str
    status: str
    attempts: int = 0
    deliveries: int = 0
    first_at: datetime | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    last_message_id: str | None = None
    last_error: dict[str, Any] | None = None
    queued: tuple[str, ...] = ()
    replays: int = 0
    fan_in: FanInProgress | None = None

    @classmethod
    def from_record(cls, name: str, data: Mapping[str, Any]) -> WorkflowStageState:
        fan = data.get("fan_in")
        fan_in = None
        if isinstance(fan, dict):
            fan_in = FanInProgress(
                arrived=_int(fan.get("arrived")),
                expected=_int(fan.get("expected")),
                branches=_strs(fan.get("branches")),
                expires_at=_time(fan.get("expires_at")),
            )
        return cls(
            name=name,
            status=_str(data.get("status")) or "unknown",
            attempts=_int(data.get("attempts")),
            deliveries=_int(data.get("deliveries")),
            first_at=_time(data.get("first_at")),
            started_at=_time(data.get("started_at")),
            updated_at=_time(data.get("updated_at")),
            completed_at=_time(data.get("completed_at")),
            last_message_id=_str(data.get("last_message_id")),
            last_error=_error(data.get("last_error")),
            queued=_strs(data.get("queued")),
            replays=_int(data.get("replays")),
            fan_in=fan_in,
        )

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "status": self.status,
            "attempts": self.attempts,
            "deliveries": self.deliveries,
            "first_at": _iso(self.first_at),
            "started_at": _iso(self.started_at),
            "updated_at": _iso(self.updated_at),
            "completed_at": _iso(self.completed_at),
            "last_message_id": self.last_message_id,
            "last_error": self.last_error,
            "queued_message_ids": list(self.queued),
            "replays": self.replays,
            "fan_in": self.fan_in.to_dict() if self.fan_in is not None else None,
        }


@attrs.frozen
class LineageMessage:
    """A message of the run: where it went, where it came from, what caused it."""

    message_id: str
    stage: str | None
    origin_stage: str | None
    parent_message_id: str | None
    correlation_id: str | None
    action: str | None
    state: str
    first_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "stage": self.stage,
            "origin_stage": self.origin_stage,
            "parent_message_id": self.parent_message_id,
            "correlation_id": self.correlation_id,
            "action": self.action,
            "state": self.state,
            "first_at": _iso(self.first_at),
        }


@attrs.frozen
class WorkflowRunState:
    """A run (one task id through the workflow), read from the run hash.

    ``stages`` is ordered by first appearance; ``messages`` (lineage) by
    first sighting. ``last_messages`` holds, per stage, the raw envelope
    that last entered it (what a replay re-publishes); it is not part of
    :meth:`to_dict`.
    """

    task_id: str
    created_at: datetime | None
    updated_at: datetime | None
    terminal: bool
    terminal_stage: str | None
    completed_at: datetime | None
    last_error: dict[str, Any] | None
    stages: Mapping[str, WorkflowStageState]
    messages: tuple[LineageMessage, ...] = ()
    last_messages: Mapping[str, bytes] = attrs.field(factory=dict, repr=False)
    #: When a cancel of the run was accepted, and its reason (``None``: not cancelled).
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None

    @classmethod
    def from_hash(cls, task_id: str, raw: Mapping[bytes, bytes]) -> WorkflowRunState | None:
        """The run, or None when the hash is empty (unknown or expired run)."""
        if not raw:
            return None
        run: dict[str, Any] = {}
        stages: list[WorkflowStageState] = []
        messages: list[LineageMessage] = []
        last: dict[str, bytes] = {}
        for key, value in raw.items():
            field = key.decode("utf-8", "replace")
            kind, _, name = field.partition(":")
            if field == "run":
                run = _json(value) or {}
            elif kind == "s" and name:
                data = _json(value)
                if data is not None:
                    stages.append(WorkflowStageState.from_record(name, data))
            elif kind == "m" and name:
                last[name] = bytes(value)
            elif kind == "l" and name:
                data = _json(value)
                if data is not None:
                    messages.append(
                        LineageMessage(
                            message_id=_str(data.get("message_id")) or name,
                            stage=_str(data.get("stage")),
                            origin_stage=_str(data.get("origin_stage")),
                            parent_message_id=_str(data.get("parent_message_id")),
                            correlation_id=_str(data.get("correlation_id")),
                            action=_str(data.get("action")),
                            state=_str(data.get("state")) or "unknown",
                            first_at=_time(data.get("first_at")),
                        )
                    )
        epoch = datetime.min.replace(tzinfo=UTC)
        stages.sort(key=lambda s: (s.first_at or epoch, s.name))
        messages.sort(key=lambda m: (m.first_at or epoch, m.message_id))
        return cls(
            task_id=task_id,
            created_at=_time(run.get("created_at")),
            updated_at=_time(run.get("updated_at")),
            terminal=run.get("terminal") is True,
            terminal_stage=_str(run.get("terminal_stage")),
            completed_at=_time(run.get("completed_at")),
            last_error=_error(run.get("last_error")),
            stages={s.name: s for s in stages},
            messages=tuple(messages),
            last_messages=last,
            cancelled_at=_time(run.get("cancelled_at")),
            cancel_reason=_str(run.get("cancel_reason")),
        )

    @property
    def current_stages(self) -> tuple[str, ...]:
        """Stages with work left (queued, running, waiting at a join, retrying)."""
        return tuple(s.name for s in self.stages.values() if s.active)

    @property
    def current_stage(self) -> str | None:
        """The most recently updated current stage (the original's single value)."""
        active = [s for s in self.stages.values() if s.active]
        if not active:
            return None
        epoch = datetime.min.replace(tzinfo=UTC)
        return max(active, key=lambda s: s.updated_at or epoch).name

    @property
    def status(self) -> str:
        """``completed`` (a terminal stage completed), ``cancelled`` (a cancel was
        accepted: no stage runs any more), ``running`` (work left), ``expired`` (a
        stage met the run's deadline), ``failed`` (a stage stopped on an error,
        nothing left to run) or ``stalled`` (nothing running and no terminal
        stage)."""
        if self.terminal:
            return "completed"
        if self.cancelled_at is not None:
            return "cancelled"
        if self.current_stages:
            return "running"
        if any(s.status == "expired" for s in self.stages.values()):
            return "expired"
        if any(s.status in FAILED_STATUSES for s in self.stages.values()):
            return "failed"
        return "stalled"

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "status": self.status,
            "current_stage": self.current_stage,
            "current_stages": list(self.current_stages),
            "terminal": self.terminal,
            "terminal_stage": self.terminal_stage,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "completed_at": _iso(self.completed_at),
            "last_error": self.last_error,
            "cancelled_at": _iso(self.cancelled_at),
            "cancel_reason": self.cancel_reason,
            "stages": [s.to_dict() for s in self.stages.values()],
        }
