"""``WorkflowRuns``: read a run, explain it, replay a stage, resume a stalled run.

Replay re-publishes the last message that entered a stage (or one built
from a given payload) with a new message id, through the stage's publish
key with a broker confirm, then records the stage as queued. It refuses a
stage that is running or waiting at a join unless forced, and a join that
already completed (a completed join is never run twice). Resume replays the
run's latest stage that did not complete.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import orjson

from relayna.contracts import WorkflowEnvelope, decode_workflow, validate_identifier
from relayna.contracts import headers as h
from relayna.errors import (
    ConfigurationError,
    ContractError,
    WorkflowConflict,
    WorkflowRunNotFound,
)
from relayna.rabbitmq import CancelResult, CancelStore, RelaynaClient, cancel_task
from relayna.topology import SharedStatusWorkflowTopology
from relayna.transport import Broker, Store

from ._diagnose import WorkflowDiagnosis, explain_stall
from ._lineage import build_lineage
from ._state import WorkflowRunState
from ._store import WorkflowStore, WorkflowStoreConfig, lineage_of

__all__ = ["ReplayResult", "WorkflowRuns", "cancel_run"]


@attrs.frozen
class ReplayResult:
    task_id: str
    stage: str
    message_id: str
    previous_message_id: str | None
    previous_status: str | None
    replayed_at: datetime
    forced: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "stage": self.stage,
            "message_id": self.message_id,
            "previous_message_id": self.previous_message_id,
            "previous_status": self.previous_status,
            "replayed_at": self.replayed_at.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "forced": self.forced,
            "reason": self.reason,
        }


class WorkflowRuns:
    """Run state, diagnosis and replay for one workflow topology.

    Args:
        store: the store the stage workers write their run state to.
        topology: the workflow topology.
        broker: an open broker for replays (read-only use needs none).
        config: the workers' key prefix and TTLs.
        cancels: the cancellation keys the stage workers use (default: the
            status store's default prefix ``relayna``, in the workflow
            store's key layout: ``config.cluster`` gives the cluster one).
    """

    def __init__(
        self,
        store: Store,
        topology: SharedStatusWorkflowTopology,
        *,
        broker: Broker | None = None,
        config: WorkflowStoreConfig | None = None,
        cancels: CancelStore | None = None,
    ) -> None:
        self.topology = topology
        self.workflow = WorkflowStore(store, config)
        self.broker = broker
        if cancels is None:
            cancels = CancelStore(store, cluster=self.workflow.config.cluster)
        self.cancels = cancels

    async def get(self, task_id: str) -> WorkflowRunState | None:
        """The run of ``task_id``, or None (never started, or expired)."""
        return WorkflowRunState.from_hash(task_id, await self.workflow.read_run(task_id))

    async def diagnose(
        self, task_id: str, *, now: datetime | None = None, expected_within: timedelta | None = None
    ) -> WorkflowDiagnosis:
        return explain_stall(
            await self.get(task_id),
            task_id=task_id,
            topology=self.topology,
            now=now,
            expected_within=expected_within,
        )

    async def describe(self, task_id: str) -> dict[str, Any] | None:
        """``{task_id, run, diagnosis, lineage}`` (the run route's body), or None."""
        run = await self.get(task_id)
        if run is None:
            return None
        return {
            "task_id": task_id,
            "run": run.to_dict(),
            "diagnosis": explain_stall(run, topology=self.topology).to_dict(),
            "lineage": [e.to_dict() for e in build_lineage(run.messages)],
            "messages": [m.to_dict() for m in run.messages],
        }

    async def replay_stage(
        self,
        task_id: str,
        stage: str,
        payload: dict[str, Any] | None = None,
        *,
        reason: str = "replay",
        force: bool = False,
    ) -> ReplayResult:
        """Re-publish the last (or a ``payload``-built) message into ``stage``.

        Raises:
            WorkflowRunNotFound: no run state for ``task_id``.
            WorkflowConflict: the stage is running or waiting (unless
                ``force``), is a completed join, or never received a message
                and no ``payload`` was given.
            TopologyError: ``stage`` is not a stage of the topology.
            WorkflowContractError / ContractError: the message breaks the
                stage's contract or the size limit (nothing is published).
            BrokerError: the publish was not confirmed.
        """
        target = self.topology.stage(stage)
        run = await self.get(task_id)
        if run is None:
            raise WorkflowRunNotFound(f"no workflow run for task {task_id!r}", task_id=task_id)
        if run.cancelled_at is not None and not run.terminal:
            raise WorkflowConflict(
                f"the run of task {task_id!r} was cancelled; its stages do not run any more",
                code="run_cancelled",
                task_id=task_id,
                stage=stage,
            )
        state = run.stages.get(stage)
        previous = state.status if state is not None else None
        if target.join is not None and previous == "completed":
            raise WorkflowConflict(
                f"join {stage!r} of task {task_id!r} completed; a join never runs twice",
                code="join_completed",
                task_id=task_id,
                stage=stage,
            )
        if previous in ("running", "waiting") and not force:
            raise WorkflowConflict(
                f"stage {stage!r} of task {task_id!r} is {previous}; pass force to replay anyway",
                code="stage_running",
                task_id=task_id,
                stage=stage,
            )
        last = run.last_messages.get(stage)
        base: WorkflowEnvelope | None = None
        if last is not None:
            try:
                base = decode_workflow(last)
            except ContractError:
                base = None
        if base is None and payload is None:
            raise WorkflowConflict(
                f"stage {stage!r} of task {task_id!r} never received a message: give a payload",
                code="nothing_to_replay",
                task_id=task_id,
                stage=stage,
            )
        now = datetime.now(UTC)
        message_id = uuid.uuid4().hex
        if base is None:
            envelope = WorkflowEnvelope(
                task_id=task_id, stage=stage, message_id=message_id, payload=dict(payload or {})
            )
        else:
            envelope = attrs.evolve(
                base,
                message_id=message_id,
                payload=dict(payload) if payload is not None else base.payload,
            )
        replay_meta = {
            "replayed_at": now.isoformat(),
            "previous_message_id": base.message_id if base is not None else None,
            "forced": force,
        }
        envelope = attrs.evolve(envelope, meta={**envelope.meta, "replay": replay_meta})
        headers = {
            h.REPLAY_TASK_ID: task_id,
            h.REPLAY_STAGE: stage,
            h.REPLAY_REASON: reason[:255],
            h.REPLAY_META: orjson.dumps(replay_meta).decode(),
        }
        await self._client().publish_to_stage(envelope, headers=headers)
        await self.workflow.replayed(
            task_id=task_id,
            stage=stage,
            message_id=message_id,
            lineage=lineage_of(envelope),
            reason=reason[:255],
        )
        return ReplayResult(
            task_id=task_id,
            stage=stage,
            message_id=message_id,
            previous_message_id=base.message_id if base is not None else None,
            previous_status=previous,
            replayed_at=now,
            forced=force,
            reason=reason,
        )

    async def resume(self, task_id: str, *, reason: str = "resume") -> ReplayResult:
        """Continue a stalled run from its latest stage that did not complete.

        Raises:
            WorkflowRunNotFound: no run state.
            WorkflowConflict: the run completed (``run_completed``), every
                stage completed (``nothing_to_resume``), or the latest
                unfinished stage is still running (``stage_running``).
        """
        run = await self.get(task_id)
        if run is None:
            raise WorkflowRunNotFound(f"no workflow run for task {task_id!r}", task_id=task_id)
        if run.terminal:
            raise WorkflowConflict(
                f"the run of task {task_id!r} completed", code="run_completed", task_id=task_id
            )
        epoch = datetime.min.replace(tzinfo=UTC)
        open_stages = sorted(
            (s for s in run.stages.values() if s.status != "completed"),
            key=lambda s: (s.updated_at or epoch, s.name),
        )
        if not open_stages:
            raise WorkflowConflict(
                f"every stage of task {task_id!r} completed; nothing to resume",
                code="nothing_to_resume",
                task_id=task_id,
            )
        return await self.replay_stage(task_id, open_stages[-1].name, reason=reason)

    async def cancel(self, task_id: str, reason: str | None = None) -> CancelResult:
        """Cancel the run of ``task_id`` (see :func:`cancel_run`).

        Raises:
            ConfigurationError: no broker.
            and as :func:`cancel_run`.
        """
        if self.broker is None:
            raise ConfigurationError("cancel needs a broker (WorkflowRuns(..., broker=...))")
        return await cancel_run(self.broker, self.cancels, self.workflow, task_id, reason)

    def _client(self) -> RelaynaClient:
        if self.broker is None:
            raise ConfigurationError("replay needs a broker (WorkflowRuns(..., broker=...))")
        return RelaynaClient(topology=self.topology, broker=self.broker)


async def cancel_run(
    broker: Broker,
    cancels: CancelStore,
    workflow: WorkflowStore,
    task_id: str,
    reason: str | None = None,
) -> CancelResult:
    """Cancel the workflow run of ``task_id``: no stage is entered any more, a
    running stage handler is cancelled, and the run ends ``cancelled`` exactly once.

    These are the cancellation steps of tasks, keyed by the run's task id:
    the marker (every stage checks it before its handler, in the store step
    that decides the run's one ending), the control message (the worker
    running a stage handler of the run cancels its scope), then the run state
    records the cancel. Answers ``requested``, or ``pending`` when an earlier
    cancel waits (cancelling twice changes nothing).

    Raises:
        ContractError: invalid id or reason (``invalid_reason``).
        WorkflowRunNotFound: no run state for ``task_id``.
        WorkflowConflict: the run already ended (``run_ended``, with
            ``status``: its terminal stage completed, or a stage already
            reported the run's end).
        StoreError, BrokerError: the store or the broker failed.
    """
    validate_identifier(task_id)
    text = cancels.check_reason(reason)
    run = WorkflowRunState.from_hash(task_id, await workflow.read_run(task_id))
    if run is None:
        raise WorkflowRunNotFound(f"no workflow run for task {task_id!r}", task_id=task_id)
    if run.terminal:
        raise WorkflowConflict(
            f"the run of task {task_id!r} completed",
            code="run_ended",
            task_id=task_id,
            status="completed",
        )
    result = await cancel_task(broker, cancels, task_id, text, require_known=False)
    if result.state == "terminal":
        raise WorkflowConflict(
            f"the run of task {task_id!r} already ended with status {result.status!r}",
            code="run_ended",
            task_id=task_id,
            status=result.status,
        )
    await workflow.cancelled(task_id, result.reason or text)
    return result
