"""The workflow's durable state on a :class:`~relayna.transport.Store`: key names,
and one method per script (see :mod:`relayna.workflow._scripts` for the layout).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import orjson

from relayna._validators import cluster_layout
from relayna.contracts import WorkflowEnvelope, validate_identifier
from relayna.errors import ConfigurationError, ScriptError, StoreError
from relayna.transport import Store, run_script_calls

from ._records import Arrival, Entry, Handoff, StageStep
from ._scripts import (
    FANIN_ARRIVE_SCRIPT,
    GUARD_RELEASE_SCRIPT,
    GUARD_RENEW_SCRIPT,
    RUN_CANCEL_SCRIPT,
    RUN_REPLAY_SCRIPT,
    STAGE_ENTER_SCRIPT,
    STAGE_SETTLE_SCRIPT,
    STAGE_STEPS_SCRIPT,
)

__all__ = [
    "Arrival",
    "Entry",
    "Guard",
    "Handoff",
    "StageStep",
    "WorkflowKeys",
    "WorkflowStore",
    "WorkflowStoreConfig",
    "lineage_of",
    "now_ms",
]


def now_ms() -> int:
    """Wall-clock milliseconds (the scripts' time base)."""
    return int(time.time() * 1000)


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class WorkflowStoreConfig:
    """Where and how long the workflow keeps its state.

    Attributes:
        prefix: the key prefix (the original's default ``relayna``).
        run_ttl_seconds: lifetime of a run's state after its last change.
        dedup_ttl_seconds: lifetime of a completion marker of a stage with
            ``dedup_key_fields`` (a duplicate after that runs again).
        cluster: the Redis Cluster key layout: the run's task id is the hash
            tag of every key of the run (run state, fan-in barriers, dedup
            markers, in-flight guards), so each script touches one slot.
    """

    prefix: str = "relayna"
    run_ttl_seconds: float = attrs.field(default=7 * 86_400.0, validator=_positive)
    dedup_ttl_seconds: float = attrs.field(default=86_400.0, validator=_positive)
    cluster: bool = attrs.field(default=False, validator=cluster_layout, kw_only=True)

    @property
    def run_ttl_ms(self) -> int:
        return max(1, int(self.run_ttl_seconds * 1000))

    @property
    def dedup_ttl_ms(self) -> int:
        return max(1, int(self.dedup_ttl_seconds * 1000))


@attrs.frozen
class WorkflowKeys:
    """The original's key names (ANCHOR §5; seed 002 "Workflow Helper State");
    with ``cluster`` the task id in braces (its hash tag)."""

    prefix: str = "relayna"
    cluster: bool = False

    def _t(self, task_id: str) -> str:
        return "{" + task_id + "}" if self.cluster else task_id

    def run(self, task_id: str) -> str:
        return f"{self.prefix}:workflow:run:{self._t(validate_identifier(task_id))}"

    def fanin(self, task_id: str, stage: str) -> str:
        return f"{self.prefix}:workflow:fanin:{self._t(task_id)}:{stage}"

    def dedup(self, stage: str, task_id: str, signature: str) -> str:
        return f"{self.prefix}:workflow:contract:{stage}:dedup:{self._t(task_id)}:{signature}"

    def inflight(self, stage: str, task_id: str) -> str:
        return f"{self.prefix}:workflow:contract:{stage}:inflight:{self._t(task_id)}"


def lineage_of(message: WorkflowEnvelope) -> dict[str, Any]:
    """What the run state keeps of a message for its lineage."""
    return {
        "message_id": message.message_id,
        "stage": message.stage,
        "origin_stage": message.origin_stage,
        "parent_message_id": message.parent_message_id,
        "correlation_id": message.correlation_id or message.task_id,
        "action": message.action,
    }


def _lineage_json(lineage: Mapping[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in lineage.items() if v is not None})


class WorkflowStore:
    """One method per workflow script; every call is one round trip.

    Raises :class:`~relayna.errors.StoreError` when the store fails.
    """

    def __init__(self, store: Store, config: WorkflowStoreConfig | None = None) -> None:
        self.store = store
        self.config = config or WorkflowStoreConfig()
        self.keys = WorkflowKeys(self.config.prefix, self.config.cluster)

    async def enter(self, **fields: Any) -> Entry:
        """Before a handler: completed before (``duplicate``), another worker runs it
        (``busy``), else the guard is taken and the run state says running (``go``).
        ``fields``: those of :meth:`enter_step`."""
        op = self.enter_step(**fields)
        reply: Any = await self.store.run_script(STAGE_ENTER_SCRIPT, op.keys[:3], op.args)
        return Entry(_text(reply[0]), _text(reply[1]))

    def enter_step(
        self,
        *,
        task_id: str,
        stage: str,
        message_id: str,
        guard: str,
        owner: str,
        guard_ttl_ms: int,
        envelope: bytes,
        lineage: Mapping[str, Any],
        dedup_signature: str | None = None,
    ) -> StageStep:
        """The :meth:`enter` step (also for :meth:`steps`)."""
        keys = self._step_keys(task_id, stage, dedup_signature)
        args: list[Any] = [
            stage,
            message_id,
            guard,
            owner,
            now_ms(),
            guard_ttl_ms,
            self.config.run_ttl_ms,
            envelope,
            _lineage_json(lineage),
            "1" if dedup_signature else "0",
        ]
        return StageStep("enter", keys, args)

    async def arrive(
        self,
        *,
        task_id: str,
        stage: str,
        branch: str,
        message_id: str,
        envelope: bytes,
        expected: int,
        fanin_ttl_ms: int,
        owner: str,
        guard_ttl_ms: int,
        lineage: Mapping[str, Any],
    ) -> Arrival:
        keys = [
            self.keys.fanin(task_id, stage),
            self.keys.run(task_id),
            self.keys.inflight(stage, task_id),
        ]
        args: list[Any] = [
            stage,
            branch,
            message_id,
            envelope,
            expected,
            fanin_ttl_ms,
            owner,
            now_ms(),
            guard_ttl_ms,
            self.config.run_ttl_ms,
            _lineage_json(lineage),
        ]
        reply: Any = await self.store.run_script(FANIN_ARRIVE_SCRIPT, keys, args)
        rest = list(reply[3:])
        branches = tuple((_text(rest[i]), bytes(rest[i + 1])) for i in range(0, len(rest) - 1, 2))
        return Arrival(_text(reply[0]), int(_text(reply[1])), _text(reply[2]) == "1", branches)

    async def complete(self, **fields: Any) -> bool:
        """The stage completed ``message_id``: markers, hand-offs, guard released
        (``fields``: those of :meth:`complete_step`).

        Returns False when the guard was no longer ``owner``'s (it expired and
        another worker may have run the message too); the completion is
        recorded all the same.
        """
        return await self._settle(self.complete_step(**fields))

    def complete_step(
        self,
        *,
        task_id: str,
        stage: str,
        message_id: str,
        guard: str,
        owner: str,
        handoffs: Sequence[Handoff] = (),
        terminal: bool = False,
        dedup_signature: str | None = None,
        join: bool = False,
    ) -> StageStep:
        """The :meth:`complete` step (also for :meth:`steps`)."""
        payload = [[h.target, h.message_id, _lineage_json(h.lineage).decode()] for h in handoffs]
        return StageStep(
            "settle",
            self._step_keys(task_id, stage, dedup_signature),
            [
                "complete",
                stage,
                message_id,
                guard,
                owner,
                now_ms(),
                self.config.run_ttl_ms,
                self.config.dedup_ttl_ms if dedup_signature else 0,
                "",
                "{}",
                orjson.dumps(payload),
                "1" if terminal else "0",
                "1" if join else "0",
            ],
        )

    async def fail(self, **fields: Any) -> bool:
        """The attempt failed (``status``: retrying, dead_lettered, failed); guard
        released (``fields``: those of :meth:`fail_step`)."""
        return await self._settle(self.fail_step(**fields))

    def fail_step(
        self,
        *,
        task_id: str,
        stage: str,
        message_id: str,
        guard: str,
        owner: str,
        status: str,
        error: Mapping[str, Any],
    ) -> StageStep:
        """The :meth:`fail` step (also for :meth:`steps`)."""
        return StageStep(
            "settle",
            self._step_keys(task_id, stage, None),
            [
                "fail",
                stage,
                message_id,
                guard,
                owner,
                now_ms(),
                self.config.run_ttl_ms,
                0,
                status,
                orjson.dumps(dict(error)),
                "[]",
                "0",
                "0",
            ],
        )

    def _step_keys(self, task_id: str, stage: str, signature: str | None) -> list[str]:
        return [
            self.keys.run(task_id),
            self.keys.inflight(stage, task_id),
            self.keys.dedup(stage, task_id, signature or "-"),
            self.keys.fanin(task_id, stage),
        ]

    async def _settle(self, op: StageStep) -> bool:
        reply: Any = await self.store.run_script(STAGE_SETTLE_SCRIPT, op.keys, op.args)
        return int(reply) == 1

    async def steps(self, ops: Sequence[StageStep]) -> list[Entry | bool | ScriptError]:
        """Run enter and settle steps in one script call (one round trip), each atomic,
        in order: an :class:`Entry` per enter step, ``held`` per settle step, or the
        :class:`~relayna.errors.ScriptError` of a step refused for a key of the wrong
        type (that step wrote nothing; the others ran). In the cluster layout the
        steps of different runs live in different slots: each step is a call of its
        own, the calls pipelined in one round trip where the store can.

        Raises:
            StoreError: the store failed (no step may have run, or all did).
        """
        calls = [(op.keys, [op.verb, len(op.args), *op.args]) for op in ops]
        if self.config.cluster:
            replies: list[Any] = []
            for reply in await run_script_calls(self.store, STAGE_STEPS_SCRIPT, calls):
                if isinstance(reply, StoreError):
                    raise reply
                replies += reply
        else:
            keys: list[str] = [key for op_keys, _ in calls for key in op_keys]
            args: list[Any] = [arg for _, op_args in calls for arg in op_args]
            replies = await self.store.run_script(STAGE_STEPS_SCRIPT, keys, args)
        out: list[Entry | bool | ScriptError] = []
        for op, i in zip(ops, range(0, len(replies), 2), strict=True):
            verdict, detail = _text(replies[i]), _text(replies[i + 1])
            if verdict == "error":
                out.append(ScriptError(detail))
            elif op.verb == "enter":
                out.append(Entry(verdict, detail))
            else:
                out.append(verdict == "1")
        return out

    async def replayed(
        self, *, task_id: str, stage: str, message_id: str, lineage: Mapping[str, Any], reason: str
    ) -> bool:
        """Mark ``stage`` queued again for a replayed message; False: no such run."""
        reply: Any = await self.store.run_script(
            RUN_REPLAY_SCRIPT,
            [self.keys.run(task_id)],
            [stage, message_id, now_ms(), self.config.run_ttl_ms, _lineage_json(lineage), reason],
        )
        return int(reply) == 1

    async def cancelled(self, task_id: str, reason: str) -> bool:
        """Record in the run state that the run was cancelled; False: no such run."""
        reply: Any = await self.store.run_script(
            RUN_CANCEL_SCRIPT, [self.keys.run(task_id)], [now_ms(), self.config.run_ttl_ms, reason]
        )
        return int(reply) == 1

    async def read_run(self, task_id: str) -> dict[bytes, bytes]:
        """The raw run hash (empty when the run is unknown or expired)."""
        return await self.store.hgetall(self.keys.run(task_id))

    async def read_fanin(self, task_id: str, stage: str) -> dict[bytes, bytes]:
        return await self.store.hgetall(self.keys.fanin(task_id, stage))

    def guard(self, stage: str, task_id: str) -> Guard:
        """The in-flight guards of ``stage`` for ``task_id``, as a renewable lease."""
        return Guard(self.store, self.keys.inflight(stage, task_id))


class Guard:
    """In-flight guards as a :class:`~relayna.consumer.Renewable` (lease id = field)."""

    def __init__(self, store: Store, key: str) -> None:
        self.store = store
        self.key = key

    async def renew(self, lease_id: str, owner: str, ttl: float) -> bool:
        ttl_ms = max(1, int(ttl * 1000))
        reply: Any = await self.store.run_script(
            GUARD_RENEW_SCRIPT, [self.key], [lease_id, owner, now_ms(), ttl_ms]
        )
        return int(reply) == 1

    async def release(self, lease_id: str, owner: str) -> bool:
        reply: Any = await self.store.run_script(
            GUARD_RELEASE_SCRIPT, [self.key], [lease_id, owner]
        )
        return int(reply) == 1


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)
