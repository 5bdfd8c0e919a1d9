"""What every consumer shares: run/readiness, reconnect, observations, handler calls.

The pieces live next door: calling the user's handler (middleware, threads,
outcome) is :mod:`._handler`; settling a delivery whose effects failed is
:mod:`._effects`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from functools import partial
from typing import Any

import anyio
import attrs
from anyio import CancelScope
from anyio.abc import TaskStatus

from relayna._supervise import Backoff, supervise
from relayna.contracts import DEFAULT_LIMITS, ContractAliasConfig, Limits
from relayna.errors import (
    AuthenticationError,
    BrokerConnectionError,
    BrokerError,
    ConfigurationError,
    ConsumerTimedOut,
    RelaynaError,
)
from relayna.observability import (
    Observation,
    ObservationPump,
    ObservationSink,
    RelaynaMetrics,
    TaskConsumerLoopError,
    TaskConsumerStarted,
    TaskMessageRejected,
    consumer_span,
)
from relayna.rabbitmq import RelaynaClient, StatusTopology, open_relayna_client
from relayna.transport import Broker, Delivery, QueueSpec, ReplicaBarrier

from ._context import LifecycleStatuses, ManualRetryRequest, TaskContext
from ._decide import (
    Decision,
    ExpiryAction,
    Failed,
    FailureAction,
    Outcome,
    Poison,
    RetryPolicy,
    Succeeded,
    decide,
)
from ._dlq import DLQRecorder
from ._effects import settle_failed_effect
from ._handler import AsyncCache, Middleware, call_handler, log_failure
from ._heartbeat import HeartbeatSnapshot, WorkerHeartbeats
from ._runtime import Session
from ._settle import ConsumerStats, Settler, poison_info

__all__ = ["ConsumerBase", "Middleware"]

logger = logging.getLogger("relayna.consumer")

_NO_STATUSES = LifecycleStatuses()
#: Attributes naming what a consumer writes to its store before an ack.
_WRITERS = ("idempotency", "cancels", "leases")
# Capped at 5 s (x1.2 jitter): after an outage of any length the consumer is back
# within ~6 s of the broker (the reliability target is 10 s).
_BACKOFF = Backoff(initial=0.2, maximum=5.0)


#: Extra time, after ``drain_timeout``, for settling and closing the connection.
SHUTDOWN_MARGIN = 10.0

_HOST = socket.gethostname()[:64]


async def _forward_cancellation(stop: Callable[[], None]) -> None:
    try:
        await anyio.sleep_forever()
    finally:
        stop()


class _StartupFailed(Exception):
    """A non-connection error before the first consume-ok: do not retry."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@attrs.define(eq=False, kw_only=True)
class ConsumerBase:
    """Shared configuration and lifecycle (see :class:`TaskConsumer`)."""

    topology: StatusTopology
    broker: Broker | str
    consumer_name: str = "relayna-consumer"
    prefetch: int | None = None
    retry_policy: RetryPolicy | None = None
    statuses: LifecycleStatuses = _NO_STATUSES
    dlq_recorder: DLQRecorder | None = None
    dlq_record_timeout: float = 5.0
    observation_sink: ObservationSink | None = None
    observation_buffer: int = 1024
    middleware: Sequence[Middleware] = ()
    drain_timeout: float = 30.0
    thread_limiter: anyio.CapacityLimiter | None = None
    limits: Limits = DEFAULT_LIMITS
    aliases: ContractAliasConfig | None = None
    backoff: Backoff = _BACKOFF
    heartbeats: WorkerHeartbeats | None = None
    metrics: RelaynaMetrics | None = None
    #: Replicas the store writes made for a message must reach before its ack
    #: (``None``: 1 on a Redis Cluster store, 0 elsewhere); see ReplicaBarrier.
    replica_acks: int | None = None
    replica_wait: float = 1.0

    stats: ConsumerStats = attrs.field(init=False, factory=ConsumerStats)
    _pump: ObservationPump = attrs.field(init=False, default=None)
    _session: Session | None = attrs.field(init=False, default=None)
    _ready: bool = attrs.field(init=False, default=False)
    _state: str = attrs.field(init=False, default="starting")
    _async_cache: AsyncCache = attrs.field(init=False, factory=AsyncCache)
    _replicas: ReplicaBarrier = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if self.prefetch is not None and (type(self.prefetch) is not int or self.prefetch < 1):
            raise ConfigurationError(f"prefetch must be an integer >= 1, got {self.prefetch!r}")
        if self.drain_timeout < 0:
            raise ConfigurationError("drain_timeout must be >= 0")
        self._pump = ObservationPump(self.observation_sink, buffer=self.observation_buffer)
        self._replicas = self._replica_barrier()  # a ConfigurationError here, not at start

    def _replica_barrier(self) -> ReplicaBarrier:
        """The barrier over every store this consumer writes before an ack (the
        DLQ recorder's, idempotency, cancellation, leases, workflow run state)."""
        owners = [self.dlq_recorder, *(getattr(self, n, None) for n in _WRITERS)]
        stores = [getattr(owner, "store", None) for owner in owners]
        stores.append(getattr(self, "store", None))  # a workflow consumer's run state
        return ReplicaBarrier(
            stores,
            self.replica_acks,
            self.replica_wait,
            what=f"consumer {self.consumer_name!r}",
        )

    async def await_replicas(self) -> None:
        """The store writes made so far reached the replicas (before an ack).

        Raises:
            StoreConnectionError: they did not in time: do not ack.
        """
        await self._replicas.wait()

    # -- to implement ----------------------------------------------------------

    @property
    def queue_name(self) -> str:
        raise NotImplementedError

    async def _declare(self, client: RelaynaClient) -> None:
        raise NotImplementedError

    async def _process(self, client: RelaynaClient, settler: Settler, delivery: Delivery) -> None:
        raise NotImplementedError

    _aggregation = False

    def _on_expiry(self) -> ExpiryAction:
        return ExpiryAction.EXPIRE

    async def _consume(
        self, client: RelaynaClient, session: Session, ready: Callable[[], None]
    ) -> None:
        """Run the consume session (consumers may run companions beside it)."""
        await session.run(ready)

    # -- public ------------------------------------------------------------------

    @property
    def effective_prefetch(self) -> int:
        return self.prefetch if self.prefetch is not None else max(1, self.topology.prefetch_count)

    @property
    def worker_id(self) -> str:
        """``consumer_name@host:pid``: who handled the message (in DLQ records)."""
        return f"{self.consumer_name}@{_HOST}:{os.getpid()}"

    @property
    def observations_dropped(self) -> int:
        return self._pump.dropped

    @property
    def observations_emitted(self) -> int:
        """Observations handed to the sink's pump (not dropped)."""
        return self._pump.emitted

    @property
    def inflight(self) -> int:
        return self._session.inflight if self._session is not None else 0

    def end_drain(self) -> None:
        """End a running drain now: stop taking deliveries; unfinished work is
        cancelled and requeued.

        Safe to call before the cancellation that started the drain has reached
        the consumer: a delivery requeued by this call is not taken again.
        """
        if self._session is not None:
            self._session.stop(0.0)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Declare what the consumer needs, consume until cancelled, then drain.

        ``task_status.started()`` is called after the first consume-ok. After a
        transport failure the session is re-run with backoff (declarations
        included). Errors before the first consume-ok that are not connection
        failures (bad topology, refused declaration) are raised.

        Cancellation: stops taking deliveries at once, gives in-flight handlers
        ``drain_timeout`` seconds (shielded), settles every delivery, returns.
        """
        if self._thread_limiter_missing():
            self.thread_limiter = anyio.CapacityLimiter(self.effective_prefetch)
        if self.metrics is not None:
            self.metrics.track_consumer(self)

        def ready() -> None:
            self._state = "running"
            if not self._ready:
                self._ready = True
                self._emit(
                    TaskConsumerStarted(
                        consumer_name=self.consumer_name,
                        queue_name=self.queue_name,
                        prefetch=self.effective_prefetch,
                    )
                )
                task_status.started()

        error: BaseException | None = None
        async with anyio.create_task_group() as tg:
            pump_scope = CancelScope(shield=True)
            tg.start_soon(self._run_pump, pump_scope)
            heartbeat_scope = CancelScope(shield=True)  # keeps reporting while draining
            if self.heartbeats is not None:
                tg.start_soon(self.heartbeats.run, self._heartbeat_snapshot, heartbeat_scope)
            try:
                await supervise(
                    partial(self._run_session, ready),
                    backoff=self.backoff,
                    retry_on=(BrokerError,),
                    give_up_on=(AuthenticationError, _StartupFailed),
                    on_retry=self._on_retry,
                )
            except _StartupFailed as exc:
                error = exc.error
            except RelaynaError as exc:
                error = exc
            finally:
                self._state = "stopped"
                heartbeat_scope.cancel()
                self._pump.close()
                pump_scope.deadline = anyio.current_time() + 1.0
        if error is not None:
            # raised here, outside the task group, so callers see the error itself
            raise error

    # -- internals ---------------------------------------------------------------

    def _thread_limiter_missing(self) -> bool:
        return self.thread_limiter is None

    async def _run_pump(self, scope: CancelScope) -> None:
        with scope:
            await self._pump.run()

    def _emit(self, event: Observation) -> None:
        self._pump.emit(event)

    def _delivery_span(
        self,
        name: str,
        delivery: Delivery,
        headers: dict[str, Any],
        task_id: str,
        correlation_id: str,
        attempt: int,
    ) -> AbstractContextManager[None]:
        """The CONSUMER span (when tracing is on) around processing one delivery."""
        return consumer_span(
            name,
            headers=headers,
            queue=self.queue_name,
            consumer=self.consumer_name,
            task_id=task_id,
            correlation_id=correlation_id,
            message_id=delivery.properties.message_id,
            retry_attempt=attempt,
        )

    def _heartbeat_snapshot(self) -> HeartbeatSnapshot:
        s = self.stats
        return HeartbeatSnapshot(
            consumer_name=self.consumer_name,
            queue_name=self.queue_name,
            in_flight=self.inflight,
            processed=s.acked + s.retried + s.dead_lettered + s.rejected + s.requeued,
            state=self._state,
        )

    def _on_retry(self, exc: BaseException, attempt: int, delay: float) -> None:
        self.stats.reconnects += 1
        self._state = "reconnecting"
        if isinstance(exc, ConsumerTimedOut):
            self.stats.consumer_timeouts += 1
            logger.warning(
                "%s: the broker closed the channel of the consumer of %r because a delivery "
                "stayed unacknowledged longer than the queue's consumer timeout (%s). The "
                "broker requeued the channel's unacknowledged deliveries: they will be "
                "redelivered (an idempotency key keeps their effects once). Keep handlers "
                "shorter than the broker's consumer_timeout / x-consumer-timeout. "
                "Reconnecting in %.2fs (attempt %d)",
                self.consumer_name,
                self.queue_name,
                exc.reply_text,
                delay,
                attempt + 1,
            )
        else:
            logger.warning(
                "%s: consumer of %r failed (%r); reconnecting in %.2fs (attempt %d)",
                self.consumer_name,
                self.queue_name,
                exc,
                delay,
                attempt + 1,
            )
        self._emit(
            TaskConsumerLoopError(
                consumer_name=self.consumer_name,
                queue_name=self.queue_name,
                exception_type=type(exc).__name__,
                exception_message=str(exc)[:500],
                reconnect_in_seconds=delay,
            )
        )

    async def _run_session(self, ready: Callable[[], None]) -> None:
        """One connection + consume session.

        The session runs in a shielded scope so that the connection (whose
        reader task delivers publish confirms) outlives the drain; cancellation
        of the caller is forwarded by a watcher task that stops the session
        (stop taking deliveries, drain) and bounds the whole shutdown.
        """
        shield = CancelScope(shield=True)
        holder: list[Session] = []

        def stop() -> None:
            self._state = "draining"
            shield.deadline = anyio.current_time() + self.drain_timeout + SHUTDOWN_MARGIN
            if holder:
                holder[0].stop()
            else:
                shield.cancel()

        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_forward_cancellation, stop)
            with shield:
                try:
                    await self._session_body(ready, holder)
                except (RelaynaError, _StartupFailed) as exc:
                    error = exc
            tg.cancel_scope.cancel()
        if error is not None:
            raise error  # outside the task group: supervise sees the error itself

    async def _session_body(self, ready: Callable[[], None], holder: list[Session]) -> None:
        try:
            async with open_relayna_client(
                self.topology, self.broker, limits=self.limits, aliases=self.aliases
            ) as client:
                client.metrics = self.metrics
                await self._declare(client)
                self._replicas = self._replica_barrier()  # stores attached since construction
                settler = Settler(
                    client=client,
                    queue=self.queue_name,
                    consumer_name=self.consumer_name,
                    policy=self.retry_policy,
                    statuses=self.statuses,
                    recorder=self.dlq_recorder,
                    pump=self._pump,
                    stats=self.stats,
                    aggregation=self._aggregation,
                    worker_id=self.worker_id,
                    record_timeout=self.dlq_record_timeout,
                    replicas=self._replicas,
                )
                session = Session(
                    broker=client.broker,
                    queue=self.queue_name,
                    prefetch=self.effective_prefetch,
                    process=partial(self._guarded, client, settler),
                    drain_timeout=self.drain_timeout,
                    stats=self.stats,
                )
                self._session = session
                holder.append(session)
                await self._consume(client, session, ready)
        except BrokerConnectionError:
            raise
        except RelaynaError as exc:
            if not self._ready:
                raise _StartupFailed(exc) from exc
            raise

    async def _declare_dlq(self, client: RelaynaClient) -> None:
        if self.retry_policy is not None:
            policy = self.retry_policy
            plan = self.topology.retry_plan(
                self.queue_name,
                policy.delay_ms,
                retry_suffix=policy.retry_queue_suffix,
                dlq_suffix=policy.dead_letter_queue_suffix,
            )
            await plan.apply(client.broker)
        else:
            await client.broker.declare_queue(
                QueueSpec(RetryPolicy().dead_letter_queue(self.queue_name))
            )

    async def _guarded(self, client: RelaynaClient, settler: Settler, delivery: Delivery) -> None:
        """Process one delivery; a failed effect requeues it (counted, logged).

        Nothing raised while processing one delivery may end the consumer: an
        exception that is not a :class:`RelaynaError` is a bug in relayna (user
        code is already guarded by :func:`call_handler`), so the delivery is
        dead-lettered with reason ``internal_error`` and the traceback is
        logged once.
        """
        self.stats.received += 1
        try:
            await self._process(client, settler, delivery)
        except RelaynaError as exc:
            await settle_failed_effect(
                exc, settler, delivery, stats=self.stats, consumer_name=self.consumer_name
            )
        except Exception as exc:  # one delivery must not end the consumer
            logger.exception(
                "%s: unexpected error while processing delivery %s",
                self.consumer_name,
                delivery.delivery_tag,
            )
            await settle_failed_effect(
                exc, settler, delivery, stats=self.stats, consumer_name=self.consumer_name
            )

    async def _poison(self, settler: Settler, delivery: Delivery, poison: Poison) -> None:
        """Dead-letter a message that cannot be handled (the handler is never called)."""
        self.stats.poison[poison.reason] += 1
        info = poison_info(delivery, limits=self.limits)
        self._emit(
            TaskMessageRejected(
                consumer_name=self.consumer_name,
                queue_name=self.queue_name,
                task_id=info.task_id,
                correlation_id=info.correlation_id,
                reason=poison.reason,
                requeue=False,
            )
        )
        await settler.settle(delivery, decide(poison, self.retry_policy, 0), info)

    def _context(
        self,
        client: RelaynaClient,
        delivery: Delivery,
        *,
        task_id: str,
        correlation_id: str,
        attempt: int,
        headers: Any,
        **more: Any,
    ) -> TaskContext:
        """The handler's context for one delivery; every consumer fills these fields alike."""
        return TaskContext(
            client=client,
            consumer_name=self.consumer_name,
            source_queue=self.queue_name,
            task_id=task_id,
            correlation_id=correlation_id,
            attempt=attempt,
            max_retries=self.retry_policy.max_retries if self.retry_policy else None,
            redelivered=delivery.redelivered,
            headers=headers,
            **more,
        )

    def _decide(
        self,
        outcome: Outcome,
        attempt: int,
        task_id: str,
        failure_action: FailureAction,
        *,
        remaining_ms: float | None = None,
    ) -> Decision:
        """What happens to the delivery; a handler failure is logged here, once."""
        decision = decide(
            outcome,
            self.retry_policy,
            attempt,
            failure_action=failure_action,
            on_expiry=self._on_expiry(),
            remaining_ms=remaining_ms,
        )
        if isinstance(outcome, Failed):
            log_failure(outcome, decision, consumer_name=self.consumer_name,
                        queue=self.queue_name, task_id=task_id, attempt=attempt)  # fmt: skip
        return decision

    async def _call_handler(
        self, handler: Callable[..., Any], message: Any, ctx: TaskContext
    ) -> Succeeded | Failed | ManualRetryRequest:
        """Run middleware + handler; turn what happened into an outcome."""
        return await call_handler(
            handler,
            message,
            ctx,
            middleware=self.middleware,
            limiter=self.thread_limiter,
            cache=self._async_cache,
            stats=self.stats,
        )


HandlerT = Callable[[Any, TaskContext], Awaitable[Any] | Any]
