"""The relayna client: declare a topology, publish with confirms.

``async with open_relayna_client(topology, broker) as client`` applies the
topology's declaration plan and yields a :class:`RelaynaClient`. Every
``publish_*`` validates and encodes first (a bad input raises before anything
is sent; that part is :mod:`._prepare`), then publishes persistent, mandatory
JSON and returns only after the broker confirm; an unroutable publish raises
:class:`~relayna.errors.UnroutableError`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any, TypeVar, cast

import attrs

from relayna.contracts import (
    DEFAULT_LIMITS,
    BatchTaskEnvelope,
    ContractAliasConfig,
    Limits,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
    deadline_from,
    format_deadline,
)
from relayna.contracts import headers as h
from relayna.errors import ConfigurationError, EnvelopeTooLarge, RelaynaError, TopologyError
from relayna.observability import RelaynaMetrics, inject_span_headers, producer_span
from relayna.pipeline import Map, PipelineError
from relayna.rabbitmq import _messages as m
from relayna.rabbitmq._cancel import CancelResult, CancelStore, cancel_task
from relayna.rabbitmq._prepare import (
    aggregation_event,
    entry_message,
    prepare_batch,
    prepare_status,
    prepare_task,
    prepare_workflow,
    stage_message,
)
from relayna.rabbitmq._protocols import (
    AggregationTopology,
    StatusTopology,
    TaskTopology,
    WorkflowTopology,
)
from relayna.rabbitmq._task_ids import IfExists, TaskIds, check_if_exists, publish_once
from relayna.rabbitmq._workflow import resolve_entry, resolve_stage
from relayna.transport import Broker, Properties, open_broker

__all__ = ["RelaynaClient", "open_relayna_client", "with_deadline"]

T = TypeVar("T")
R = TypeVar("R")


async def map_bounded(items: list[T], fn: Any, concurrency: int) -> list[Any]:
    """``fn`` over ``items`` with at most ``concurrency`` in flight, results in order.

    The first failure cancels the rest and is raised as itself (not wrapped).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if not items:
        return []
    try:
        return await (items | Map(fn, concurrency=concurrency)).collect()
    except PipelineError as exc:
        if isinstance(exc.original_error, RelaynaError):
            raise exc.original_error from None
        raise


@attrs.define(eq=False)
class RelaynaClient:
    """Publishes relayna messages on an open :class:`~relayna.transport.Broker`.

    Use :func:`open_relayna_client`; the client never owns background tasks.
    """

    topology: StatusTopology
    broker: Broker
    limits: Limits = DEFAULT_LIMITS
    aliases: ContractAliasConfig | None = None
    task_ids: TaskIds | None = None
    published: int = 0
    #: Observes publish-to-confirm latency when set (the consumers set theirs).
    metrics: RelaynaMetrics | None = None
    #: The cancellation keys :meth:`cancel` writes (``None``: cancel is unavailable).
    cancels: CancelStore | None = None
    # isinstance on a runtime Protocol costs tens of µs: classify the topology once.
    _is_task: bool = attrs.field(init=False, default=False)
    _is_workflow: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self._is_workflow = isinstance(self.topology, WorkflowTopology)
        self._is_task = not self._is_workflow and isinstance(self.topology, TaskTopology)

    # -- tasks --------------------------------------------------------------

    def _task_topology(self) -> TaskTopology:
        if not self._is_task:
            raise TopologyError(
                f"{type(self.topology).__name__} has no tasks exchange: "
                "publish workflow messages with publish_to_stage / publish_to_entry"
            )
        return cast(TaskTopology, self.topology)

    def prepare_task(
        self,
        task: TaskEnvelope | Mapping[str, Any],
        headers: Mapping[str, Any] | None = None,
        *,
        known_only: bool = True,
    ) -> tuple[TaskEnvelope, str, str, bytes, Properties]:
        """Validate and encode a task: ``(task, exchange, routing_key, body, properties)``.

        ``known_only=False`` routes a task type the topology does not bind
        (another service's, on the same tasks exchange): only the mandatory
        publish can then tell whether any queue takes it.
        """
        return prepare_task(
            self._task_topology(),
            task,
            headers,
            limits=self.limits,
            aliases=self.aliases,
            known_only=known_only,
        )

    async def publish_task(
        self,
        task: TaskEnvelope | Mapping[str, Any],
        *,
        headers: Mapping[str, Any] | None = None,
        if_exists: IfExists = "run",
        deadline: datetime | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the task's time budget, not this call's
    ) -> TaskEnvelope:
        """Publish one task to the tasks exchange and wait for the confirm.

        ``deadline`` (an aware datetime) or ``timeout`` (seconds from now)
        puts an absolute UTC deadline in the ``relayna-deadline`` header: a
        worker does not start the task after it, and cancels a handler still
        running at it (status ``expired``).

        ``if_exists`` says what a task id that already exists does (it was
        published through a client with ``task_ids``, or has statuses; see
        :class:`~relayna.rabbitmq.TaskIds`): ``"run"`` (default) publishes
        anyway, as the original did; ``"skip"`` publishes nothing and returns
        the task as given; ``"error"`` raises :class:`DuplicateTaskError`.
        ``"skip"`` and ``"error"`` need the client's ``task_ids``; the check
        and the claim are one atomic script, so of two producers publishing
        one id at once only one publishes.

        Raises:
            ContractError: invalid task (identifiers, priority, size, headers),
                or deadline (reason ``deadline_passed``: already late;
                ``invalid_deadline``: naive datetime, both given, a timeout
                that is not ``0 < t <= 1 year``). Nothing is published.
            TopologyError: the topology has no tasks exchange (workflow) or
                cannot route the task type.
            ConfigurationError: ``if_exists`` is not run/skip/error, or it
                needs ``task_ids`` and the client has none.
            DuplicateTaskError: ``if_exists="error"`` and the id exists.
            UnroutableError, BrokerError: from the broker (the claim is
                released: publishing again is not a duplicate).
            StoreError: the claim failed (nothing was published).
        """
        mode = check_if_exists(if_exists)
        headers = with_deadline(headers, deadline=deadline, timeout=timeout)
        envelope, exchange, routing_key, body, props = self.prepare_task(task, headers)
        if self.task_ids is None and mode == "run":  # the original's path: no store
            await self._publish(exchange, routing_key, body, props, "publish_task")
        else:
            await publish_once(
                self.task_ids,
                envelope.task_id,
                mode,
                partial(self._publish, exchange, routing_key, body, props, "publish_task"),
            )
        return envelope

    async def publish_tasks(
        self,
        tasks: Iterable[TaskEnvelope | Mapping[str, Any]],
        *,
        headers: Mapping[str, Any] | None = None,
        concurrency: int = 16,
    ) -> list[TaskEnvelope]:
        """Publish many tasks, at most ``concurrency`` confirms outstanding.

        Every task is validated before the first publish; results keep input
        order. The first broker failure cancels the remaining publishes and is
        raised (earlier publishes stay published).
        """
        prepared = [self.prepare_task(task, headers) for task in tasks]

        async def one(item: tuple[TaskEnvelope, str, str, bytes, Properties]) -> TaskEnvelope:
            envelope, exchange, routing_key, body, props = item
            await self._publish(exchange, routing_key, body, props, "publish_task")
            return envelope

        return await map_bounded(prepared, one, concurrency)

    async def publish_batch(
        self,
        tasks: Iterable[TaskEnvelope | Mapping[str, Any]],
        *,
        batch_id: str,
        meta: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        deadline: datetime | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the task's time budget, not this call's
    ) -> BatchTaskEnvelope:
        """Publish one :class:`BatchTaskEnvelope` message holding ``tasks``.

        The routing key comes from the first task; all tasks must share one
        priority (or none), which becomes the AMQP priority. Workers fan the
        batch out into single tasks (each keeps the batch's deadline).
        """
        topology = self._task_topology()
        headers = with_deadline(headers, deadline=deadline, timeout=timeout)
        batch, routing_key, body, props = prepare_batch(
            topology,
            tasks,
            batch_id=batch_id,
            meta=meta,
            headers=headers,
            limits=self.limits,
            aliases=self.aliases,
        )
        await self._publish(topology.tasks_exchange, routing_key, body, props, "publish_batch")
        return batch

    # -- cancellation ---------------------------------------------------------

    async def cancel(
        self, task_id: str, reason: str | None = None, *, require_known: bool = True
    ) -> CancelResult:
        """Cancel a task (or, with ``require_known=False``, every item of a batch id).

        Queued or waiting in a retry queue: a worker that takes it acks it
        without calling the handler. Running: the worker cancels the
        handler's scope. Either way the task's status becomes ``cancelled``
        (``message`` = the reason). See :class:`~relayna.rabbitmq.CancelStore`.

        Returns:
            the :class:`CancelResult`: ``requested`` / ``pending`` (accepted),
            ``terminal`` (it ended: nothing changed) or ``unknown``.

        Raises:
            ConfigurationError: the client has no ``cancels`` (no store).
            ContractError: invalid id, or a reason too long (reason ``invalid_reason``).
            StoreError, BrokerError: the store or the broker failed.
        """
        if self.cancels is None:
            raise ConfigurationError(
                "cancel needs a store: open the client with cancels=CancelStore(store)"
            )
        return await cancel_task(
            self.broker, self.cancels, task_id, reason, require_known=require_known
        )

    # -- statuses -------------------------------------------------------------

    def prepare_status(self, event: StatusEvent | Mapping[str, Any]) -> tuple[StatusEvent, bytes]:
        return prepare_status(event, limits=self.limits, aliases=self.aliases)

    async def publish_status(self, event: StatusEvent | Mapping[str, Any]) -> StatusEvent:
        """Publish a status event (routing key = task_id) on the status exchange.

        ``correlation_id`` defaults to ``task_id``; ``event_id`` is filled.
        Returns the event as published.
        """
        envelope, body = self.prepare_status(event)
        await self.publish_prepared_status(envelope, body)
        return envelope

    async def publish_prepared_status(self, envelope: StatusEvent, body: bytes) -> None:
        """Publish what :meth:`prepare_status` returned (validated and encoded once)."""
        props = m.build_properties(
            correlation_id=envelope.correlation_id,
            headers=m.status_headers(envelope),
            limits=self.limits,
        )
        routing_key = self.topology.status_routing_key(envelope.task_id)
        await self._publish(
            self.topology.status_exchange, routing_key, body, props, "publish_status"
        )

    async def publish_aggregation_status(
        self, event: StatusEvent | Mapping[str, Any]
    ) -> StatusEvent:
        """Publish a status for a parent's aggregation shard (``agg.N``).

        Requires ``meta.parent_task_id``; sets ``meta.aggregation_shard`` and
        ``meta.aggregation_role="aggregation"``.
        """
        topology = self.topology
        if not isinstance(topology, AggregationTopology):
            raise TopologyError(f"{type(topology).__name__} has no sharded aggregation")
        envelope, parent = aggregation_event(topology, event, self.aliases)
        envelope, body = self.prepare_status(envelope)
        props = m.build_properties(
            correlation_id=envelope.correlation_id,
            headers=m.status_headers(envelope),
            limits=self.limits,
        )
        routing_key = topology.aggregation_routing_key(parent)
        await self._publish(topology.status_exchange, routing_key, body, props, "publish_status")
        return envelope

    # -- workflow ---------------------------------------------------------------

    async def publish_to_stage(
        self,
        message: WorkflowEnvelope | Mapping[str, Any],
        stage: str | None = None,
        *,
        headers: Mapping[str, Any] | None = None,
        deadline: datetime | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the run's time budget
    ) -> WorkflowEnvelope:
        """Publish a workflow message to ``stage`` (default: the message's stage).

        ``deadline`` / ``timeout``: the run's deadline (as for
        :meth:`publish_task`); every hand-off of the run carries it on.

        Raises:
            WorkflowContractError: the stage contract forbids this message.
            TopologyError: not a workflow topology, or an unknown stage.
            ContractError: a bad deadline (nothing is published).
        """
        headers = with_deadline(headers, deadline=deadline, timeout=timeout)
        topology = self._workflow_topology()
        message = stage_message(message, stage, self.aliases)
        target = resolve_stage(topology, message.stage)
        return await self._publish_workflow(topology, message, target, headers)

    async def publish_to_entry(
        self,
        message: WorkflowEnvelope | Mapping[str, Any],
        route: str,
        *,
        headers: Mapping[str, Any] | None = None,
        deadline: datetime | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the run's time budget
    ) -> WorkflowEnvelope:
        """Publish a workflow message through entry route ``route`` (stage = route target),
        with the run's ``deadline`` / ``timeout`` as in :meth:`publish_to_stage`."""
        headers = with_deadline(headers, deadline=deadline, timeout=timeout)
        topology = self._workflow_topology()
        entry = resolve_entry(topology, route)
        message = entry_message(message, entry, self.aliases)
        target = resolve_stage(topology, message.stage)
        return await self._publish_workflow(
            topology, message, target, headers, routing_key=entry.routing_key
        )

    def _workflow_topology(self) -> WorkflowTopology:
        if not self._is_workflow:
            raise TopologyError(f"{type(self.topology).__name__} is not a workflow topology")
        return cast(WorkflowTopology, self.topology)

    async def _publish_workflow(
        self,
        topology: WorkflowTopology,
        message: WorkflowEnvelope,
        target: Any,
        headers: Mapping[str, Any] | None,
        *,
        routing_key: str | None = None,
    ) -> WorkflowEnvelope:
        key, body, props = prepare_workflow(
            topology, message, target, headers, routing_key=routing_key, limits=self.limits
        )
        await self._publish(topology.workflow_exchange, key, body, props, "publish_workflow")
        return message

    # -- raw ----------------------------------------------------------------------

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties | None = None,
        *,
        check_size: bool = True,
    ) -> None:
        """Publish pre-encoded bytes (retry, DLQ, replay, fan-out): mandatory + confirm.

        ``exchange=""`` with ``routing_key=<queue>`` targets a queue directly.
        The body size limit applies unless ``check_size`` is False (copies of
        messages the broker already accepted, e.g. an oversized poison message
        moved to its DLQ).
        """
        if check_size and len(body) > self.limits.max_body_bytes:
            raise EnvelopeTooLarge(len(body), self.limits.max_body_bytes)
        await self._publish(exchange, routing_key, body, properties or Properties())

    async def publish_many_raw(
        self, messages: Iterable[tuple[str, str, bytes, Properties]], *, concurrency: int = 16
    ) -> None:
        """:meth:`publish_raw` for many messages, at most ``concurrency`` unconfirmed.

        The first failure cancels the rest and is raised.
        """
        items = list(messages)
        for _, _, body, _ in items:
            if len(body) > self.limits.max_body_bytes:
                raise EnvelopeTooLarge(len(body), self.limits.max_body_bytes)

        async def one(item: tuple[str, str, bytes, Properties]) -> None:
            await self._publish(*item)

        await map_bounded(items, one, concurrency)

    async def _publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        props: Properties,
        operation: str = "publish_raw",
    ) -> None:
        """Publish (mandatory, confirmed) inside a producer span when tracing is on."""
        with producer_span(
            f"relayna.rabbitmq.{operation}",
            exchange=exchange,
            routing_key=routing_key,
            message_id=props.message_id,
            correlation_id=props.correlation_id,
            task_id=_task_id(props),
            headers=props.headers,
        ) as traced:
            if traced:  # the span's context replaces any older trace headers
                headers = dict(props.headers)
                inject_span_headers(headers)
                props = attrs.evolve(props, headers=headers)
            started = time.perf_counter()
            await self.broker.publish(exchange, routing_key, body, props, mandatory=True)
            if self.metrics is not None:
                self.metrics.observe_publish(operation, time.perf_counter() - started)
        self.published += 1


def with_deadline(
    headers: Mapping[str, Any] | None,
    *,
    deadline: datetime | None = None,
    timeout: float | None = None,
    now: float | None = None,
) -> Mapping[str, Any] | None:
    """``headers`` plus the ``relayna-deadline`` that ``deadline=``/``timeout=`` ask for.

    Raises:
        ContractError: see :func:`~relayna.contracts.deadline_from`.
    """
    if deadline is None and timeout is None:
        return headers
    epoch = deadline_from(
        deadline=deadline, timeout=timeout, now=time.time() if now is None else now
    )
    assert epoch is not None
    merged = dict(headers or {})
    merged[h.DEADLINE] = format_deadline(epoch)
    return merged


def _task_id(props: Properties) -> str | None:
    value = props.headers.get(h.TASK_ID)
    return value if isinstance(value, str) else None


@asynccontextmanager
async def open_relayna_client(
    topology: StatusTopology,
    broker: Broker | str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    aliases: ContractAliasConfig | None = None,
    declare: bool = True,
    task_ids: TaskIds | None = None,
    cancels: CancelStore | None = None,
) -> AsyncIterator[RelaynaClient]:
    """Open a client on ``broker`` (a URL is opened here and closed on exit).

    Args:
        topology: the topology; its :meth:`plan` is applied unless ``declare`` is False.
        broker: an open :class:`~relayna.transport.Broker` (not closed on exit) or a URL.
        task_ids: task id claims in the store, for ``publish_task(if_exists=...)``.
        cancels: the cancellation keys, for :meth:`RelaynaClient.cancel`.

    Raises:
        ConfigurationError: bad URL; BrokerError: connection or declaration failure.
    """
    if isinstance(broker, str):
        async with open_broker(broker) as opened:
            async with open_relayna_client(
                topology,
                opened,
                limits=limits,
                aliases=aliases,
                declare=declare,
                task_ids=task_ids,
                cancels=cancels,
            ) as client:
                yield client
        return
    if declare:
        await topology.plan().apply(broker)
    yield RelaynaClient(
        topology=topology,
        broker=broker,
        limits=limits,
        aliases=aliases,
        task_ids=task_ids,
        cancels=cancels,
    )
