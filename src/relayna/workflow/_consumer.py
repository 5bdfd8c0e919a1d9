"""``WorkflowConsumer``: one stage's worker, on the task consumer's machinery.

Per delivery (theory of operation):

1. classify: a malformed envelope, a message for an unknown stage
   (``unknown_stage``) or another stage (``stage_mismatch``), or one the
   stage's inbound contract refuses (``unsupported_action``,
   ``payload_schema_violation``) is poison: dead-lettered with that reason,
   the handler never called (the shared :func:`~relayna.consumer.decide`);
2. a join stage records the branch (:mod:`._join`); any other stage enters
   through one script: a message (or dedup signature) that completed before
   is acked without a call (``DuplicateSuppressed``), one another worker is
   running waits ``lease_policy.conflict_delay`` and is requeued, else the
   in-flight guard is taken and the run state says ``running``;
3. the handler runs under the stage's ``timeout_seconds`` (reason
   ``stage_timeout``) while the guard is renewed; its hand-offs are
   confirmed as it publishes them;
4. success: one script marks the message (and the dedup signature)
   completed, records the hand-offs as queued at their targets and the
   terminal flag, and releases the guard; then the ack. Failure: the run
   state records it, then the task consumer's settler applies the decision
   (``.retry`` copy, DLQ copy + record, reject) — the same path as tasks.

A crash anywhere before the completion script leaves no completion marker:
the redelivery runs the handler again once the dead worker's guard expired
(``lease_policy.ttl``).

Steps 1-2 live here; 3-4 in :class:`~relayna.workflow._stage_run.StageRunner`
(the base class), the cancel and deadline gates in :mod:`._gate`, joins in
:mod:`._join`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, cast

import anyio
import attrs
from anyio.abc import TaskStatus

from relayna.consumer import (
    InboundWorkflow,
    Poison,
    Settler,
    parse_workflow,
)
from relayna.contracts import WorkflowEnvelope
from relayna.errors import ConfigurationError, WorkflowContractError
from relayna.observability import (
    WorkflowMessagePublished,
    WorkflowMessageReceived,
    extract_trace,
    log_context,
)
from relayna.rabbitmq import RelaynaClient, WorkflowTopology
from relayna.topology import WorkflowStage, validate_workflow_inbound
from relayna.transport import Delivery

from ._batch import StageStepBatcher
from ._context import WorkflowContext
from ._dedup import dedup_signature
from ._gate import stop_before_entry
from ._join import arrive
from ._keeper import GuardKeeper
from ._stage_run import RUN, StageRunner
from ._store import Entry, WorkflowStore, lineage_of

__all__ = ["WorkflowConsumer", "effective_retry_policy"]

logger = logging.getLogger("relayna.workflow")


def effective_retry_policy(stage: WorkflowStage, base: Any) -> Any:
    """The stage's ``max_retries`` / ``retry_delay_ms`` override ``base``'s; no
    policy at all when neither the stage nor ``base`` defines one."""
    from relayna.consumer import RetryPolicy

    if stage.max_retries is None and stage.retry_delay_ms is None:
        return base
    template = base or RetryPolicy()
    return attrs.evolve(
        template,
        max_retries=stage.max_retries if stage.max_retries is not None else template.max_retries,
        delay_ms=stage.retry_delay_ms if stage.retry_delay_ms is not None else template.delay_ms,
    )


@attrs.define(eq=False, kw_only=True)
class WorkflowConsumer(StageRunner):
    """Consume one workflow stage's inbox.

    Args:
        topology: a :class:`~relayna.topology.SharedStatusWorkflowTopology`.
        stage: the stage this consumer runs.
        handler: ``async def handler(message, ctx)`` with a
            :class:`~relayna.contracts.WorkflowEnvelope` and a
            :class:`WorkflowContext` (a join stage gets a
            :class:`JoinedMessage`); sync handlers run in a worker thread.
        store: an open store for run state, durable dedup and joins. Without
            one the stage runs with contracts, retries and DLQ only (a stage
            with ``dedup_key_fields`` or ``join`` refuses to start).
        state: key prefix and TTLs of that state.
        retry_policy: the stage's ``max_retries``/``retry_delay_ms`` override it.
        prefetch: default ``stage.max_inflight``, else the topology's.
        lease_policy: TTL and renewal of the in-flight guard (and of
            ``leases``), and how long a busy duplicate waits before requeue.
        leases: without a ``store``: one worker per message id at a time.
        cancels: cancel runs (the marker keyed by the run's task id is
            checked before a stage is entered; a running stage handler is
            cancelled through the control exchange; the run's one ending is
            decided in the store). ``cancel_grace``, ``deadline_tolerance``
            and ``on_expiry`` apply to the run's deadline as to a task's.
    """

    consumer_name: str = "relayna-workflow-consumer"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.topology, WorkflowTopology):
            raise ConfigurationError(f"{type(self.topology).__name__} is not a workflow topology")
        self._stage = self.topology.stage(self.stage)  # TopologyError for an unknown stage
        needs = self._stage.dedup_key_fields or self._stage.join is not None
        if needs and self.store is None:
            raise ConfigurationError(
                f"workflow stage {self.stage!r} has dedup_key_fields or a join: "
                "the consumer needs a store (store=...)"
            )
        self.retry_policy = effective_retry_policy(self._stage, self.retry_policy)
        if self.prefetch is None and self._stage.max_inflight is not None:
            self.prefetch = self._stage.max_inflight
        super().__attrs_post_init__()
        if self.store is not None:
            self._workflow = WorkflowStore(self.store, self.state)
            self._batcher = StageStepBatcher(self._workflow)
        self._keeper = GuardKeeper(self.lease_policy)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """As :meth:`TaskConsumer.run <relayna.consumer.TaskConsumer.run>`; with a
        store, one :class:`GuardKeeper` renews the in-flight guards of all the
        running handlers and one :class:`StageStepBatcher` runs the deliveries'
        store steps, both shielded until the drain is over."""
        if self._workflow is None:
            await super().run(task_status=task_status)
            return
        keeper_scope = anyio.CancelScope(shield=True)

        async def keep(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            with keeper_scope:
                async with anyio.create_task_group() as companions:
                    await companions.start(self._batcher.run)
                    task_status.started()
                    await self._keeper.run()

        async with anyio.create_task_group() as tg:
            await tg.start(keep)
            try:
                await super().run(task_status=task_status)
            finally:
                keeper_scope.cancel()

    @property
    def queue_name(self) -> str:
        return str(self._stage.queue)

    @property
    def workflow_stage(self) -> WorkflowStage:
        return self._stage

    @property
    def workflow_topology(self) -> WorkflowTopology:
        # checked once in __attrs_post_init__ (a Protocol isinstance costs ~40 µs)
        return cast(WorkflowTopology, self.topology)

    async def _declare(self, client: RelaynaClient) -> None:
        await self._declare_dlq(client)

    # -- classification -----------------------------------------------------------

    async def _process(self, client: RelaynaClient, settler: Settler, delivery: Delivery) -> None:
        parsed = parse_workflow(
            delivery.body, delivery.properties, limits=self.limits, aliases=self.aliases
        )
        if isinstance(parsed, Poison):
            await self._poison(settler, delivery, parsed)
            return
        message = parsed.message
        poison = self._refuse(message)
        if poison is not None:
            await self._poison(settler, delivery, poison)
            return
        correlation_id = message.correlation_id or message.task_id
        with (
            self._delivery_span(
                "relayna.consumer.workflow_message",
                delivery,
                parsed.headers,
                message.task_id,
                correlation_id,
                parsed.attempt,
            ),
            log_context(task_id=message.task_id, correlation_id=correlation_id),
            self.runs.track(message.task_id, None) as run,
        ):
            token = RUN.set(run)
            try:
                if not await stop_before_entry(self, settler, delivery, parsed):
                    await self._enter(client, settler, delivery, parsed)
            finally:
                RUN.reset(token)

    async def _enter(
        self, client: RelaynaClient, settler: Settler, delivery: Delivery, parsed: InboundWorkflow
    ) -> None:
        if self._stage.join is not None:
            await arrive(self, client, settler, delivery, parsed)
        else:
            await self._handle(client, settler, delivery, parsed)

    def _refuse(self, message: WorkflowEnvelope) -> Poison | None:
        """Why the stage refuses ``message`` before any handler (None: it does not)."""
        if message.stage != self.stage:
            known = any(s.name == message.stage for s in self.workflow_topology.stages)
            reason = "stage_mismatch" if known else "unknown_stage"
            return Poison(
                reason, f"message for stage {message.stage[:64]!r} on stage {self.stage!r}"
            )
        try:
            validate_workflow_inbound(self._stage, message.action, message.payload)
        except WorkflowContractError as exc:
            return Poison(exc.reason, str(exc)[:500])
        return None

    # -- one message ----------------------------------------------------------------

    async def _handle(
        self, client: RelaynaClient, settler: Settler, delivery: Delivery, inbound: InboundWorkflow
    ) -> None:
        message = inbound.message
        common = self.common(message, inbound.attempt)
        signature = (
            dedup_signature(message, self._stage.dedup_key_fields)
            if self._stage.dedup_key_fields
            else None
        )
        guard = f"sig:{signature}" if signature else f"msg:{message.message_id}"
        owner = uuid.uuid4().hex
        if self._workflow is not None:
            entry = await self._batcher.step(
                self._workflow.enter_step(
                    task_id=message.task_id,
                    stage=self.stage,
                    message_id=message.message_id,
                    guard=guard,
                    owner=owner,
                    guard_ttl_ms=self.lease_policy.ttl_ms,
                    envelope=delivery.body,
                    lineage=lineage_of(message),
                    dedup_signature=signature,
                )
            )
            assert isinstance(entry, Entry)
            if entry.verdict == "duplicate":
                key = signature if entry.detail == "dedup" else message.message_id
                await self.ack_duplicate(delivery, common, f"{self.stage}:{key}")
                return
            if entry.verdict == "busy":
                await self.requeue_busy(delivery, common)
                return
        self._emit(
            WorkflowMessageReceived(
                action=message.action,
                redelivered=delivery.redelivered,
                **common,
                **self.workflow_fields(message.message_id, message),
            )
        )
        ctx = self.make_context(client, delivery, inbound, message.message_id, message=message)
        await self.run_and_settle(
            settler, delivery, inbound, ctx, message, guard=guard, owner=owner,
            signature=signature, join=False,
        )  # fmt: skip

    def make_context(
        self,
        client: RelaynaClient,
        delivery: Delivery,
        inbound: InboundWorkflow,
        message_id: str,
        *,
        message: WorkflowEnvelope | None,
        joined: Any = None,
    ) -> WorkflowContext:
        first = message if message is not None else inbound.message
        common = self.common(first, inbound.attempt)

        def published(envelope: WorkflowEnvelope) -> None:
            self._emit(
                WorkflowMessagePublished(
                    action=envelope.action,
                    **common,
                    stage=envelope.stage,
                    message_id=envelope.message_id,
                    origin_stage=envelope.origin_stage,
                    parent_message_id=envelope.parent_message_id,
                )
            )

        ctx = WorkflowContext(
            client=client,
            consumer_name=self.consumer_name,
            source_queue=self.queue_name,
            task=None,
            task_id=first.task_id,
            correlation_id=first.correlation_id or first.task_id,
            attempt=inbound.attempt,
            max_retries=self.retry_policy.max_retries if self.retry_policy else None,
            redelivered=delivery.redelivered,
            headers=inbound.headers,
            allow_manual_retry=False,
            topology=self.workflow_topology,
            stage=self.stage,
            message_id=message_id,
            origin_stage=message.origin_stage if message is not None else None,
            parent_message_id=message.parent_message_id if message is not None else None,
            action=message.action if message is not None else None,
            message=message,
            joined=joined,
            on_publish=published,
            deadline=inbound.deadline,
            cancel_grace=self.cancel_grace,
        )
        trace = extract_trace(inbound.headers)
        if trace is not None:
            ctx.trace = trace  # ctx.otel_context is built from it when a handler asks
        return ctx
