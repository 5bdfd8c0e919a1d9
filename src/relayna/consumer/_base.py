"""What every consumer shares: run/readiness, reconnect, observations, handler calls."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from functools import partial
from typing import Any

import anyio
import attrs
from anyio import CancelScope
from anyio.abc import TaskStatus

from relayna._supervise import Backoff, supervise
from relayna.contracts import (
    DEFAULT_LIMITS,
    ContractAliasConfig,
    Limits,
    dumps,
)
from relayna.errors import (
    AuthenticationError,
    BrokerConnectionError,
    BrokerError,
    ConfigurationError,
    ContractError,
    RelaynaError,
    TransportError,
)
from relayna.observability import (
    Observation,
    ObservationPump,
    ObservationSink,
    TaskConsumerLoopError,
    TaskConsumerStarted,
    TaskMessageRejected,
)
from relayna.rabbitmq import RelaynaClient, StatusTopology, open_relayna_client
from relayna.transport import Broker, Delivery, QueueSpec

from ._context import LifecycleStatuses, ManualRetryRequest, ManualRetryRequested, TaskContext
from ._decide import DeadLetter, Failed, Poison, RetryPolicy, Succeeded, decide
from ._dlq import DLQRecorder
from ._heartbeat import HeartbeatSnapshot, WorkerHeartbeats
from ._runtime import Session, requeue_quietly
from ._settle import ConsumerStats, MessageInfo, Settler, poison_info

__all__ = ["ConsumerBase", "Middleware"]

logger = logging.getLogger("relayna.consumer")

#: Middleware: ``mw(message, ctx)`` returns an async context manager entered
#: around the handler (outermost first). Exceptions from the handler pass
#: through it; it must let :class:`ManualRetryRequested` propagate.
Middleware = Callable[[Any, TaskContext], AbstractAsyncContextManager[Any]]


_NO_STATUSES = LifecycleStatuses()
# Capped at 5 s (x1.2 jitter): after an outage of any length the consumer is back
# within ~6 s of the broker (the reliability target is 10 s).
_BACKOFF = Backoff(initial=0.2, maximum=5.0)


#: Extra time, after ``drain_timeout``, for settling and closing the connection.
SHUTDOWN_MARGIN = 10.0


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


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


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
    observation_sink: ObservationSink | None = None
    observation_buffer: int = 1024
    middleware: Sequence[Middleware] = ()
    drain_timeout: float = 30.0
    thread_limiter: anyio.CapacityLimiter | None = None
    limits: Limits = DEFAULT_LIMITS
    aliases: ContractAliasConfig | None = None
    backoff: Backoff = _BACKOFF
    heartbeats: WorkerHeartbeats | None = None

    stats: ConsumerStats = attrs.field(init=False, factory=ConsumerStats)
    _pump: ObservationPump = attrs.field(init=False, default=None)
    _session: Session | None = attrs.field(init=False, default=None)
    _ready: bool = attrs.field(init=False, default=False)
    _state: str = attrs.field(init=False, default="starting")
    # handler id -> (handler, is async): inspect costs µs per message
    _async_cache: dict[int, tuple[Any, bool]] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.prefetch is not None and (type(self.prefetch) is not int or self.prefetch < 1):
            raise ConfigurationError(f"prefetch must be an integer >= 1, got {self.prefetch!r}")
        if self.drain_timeout < 0:
            raise ConfigurationError("drain_timeout must be >= 0")
        self._pump = ObservationPump(self.observation_sink, buffer=self.observation_buffer)

    # -- to implement ----------------------------------------------------------

    @property
    def queue_name(self) -> str:
        raise NotImplementedError

    async def _declare(self, client: RelaynaClient) -> None:
        raise NotImplementedError

    async def _process(self, client: RelaynaClient, settler: Settler, delivery: Delivery) -> None:
        raise NotImplementedError

    _aggregation = False

    # -- public ------------------------------------------------------------------

    @property
    def effective_prefetch(self) -> int:
        return self.prefetch if self.prefetch is not None else max(1, self.topology.prefetch_count)

    @property
    def observations_dropped(self) -> int:
        return self._pump.dropped

    @property
    def inflight(self) -> int:
        return self._session.inflight if self._session is not None else 0

    def end_drain(self) -> None:
        """End a running drain now: unfinished work is cancelled and requeued."""
        if self._session is not None:
            self._session.start_drain(0.0)

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
                await self._declare(client)
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
                await session.run(ready)
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
        """Process one delivery; a failed effect requeues it (counted, logged)."""
        self.stats.received += 1
        try:
            await self._process(client, settler, delivery)
        except TransportError as exc:
            self.stats.effect_errors += 1
            logger.warning(
                "%s: effect failed for delivery %s (%r); requeueing",
                self.consumer_name,
                delivery.delivery_tag,
                exc,
            )
            await requeue_quietly(delivery, self.stats)
        except RelaynaError as exc:
            # Deterministic (e.g. a status the handler built is invalid): a
            # requeue would loop, so dead-letter the message instead.
            self.stats.effect_errors += 1
            logger.error(
                "%s: processing failed for delivery %s: %r; dead-lettering",
                self.consumer_name,
                delivery.delivery_tag,
                exc,
            )
            if delivery.settled:
                return
            info = MessageInfo(
                task_id=None,
                correlation_id=None,
                attempt=0,
                headers=dict(delivery.properties.headers),
            )
            decision = DeadLetter(
                reason="internal_error",
                attempt=0,
                exception_type=type(exc).__name__,
                exception_message=str(exc)[:1024],
            )
            try:
                await settler.settle(delivery, decision, info)
            except RelaynaError as second:
                logger.error(
                    "%s: dead-lettering failed too (%r); requeueing", self.consumer_name, second
                )
                await requeue_quietly(delivery, self.stats)

    async def _poison(self, settler: Settler, delivery: Delivery, poison: Poison) -> None:
        """Dead-letter a message that cannot be handled (the handler is never called)."""
        self.stats.poison[poison.reason] += 1
        info = poison_info(delivery)
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

    async def _call_handler(
        self, handler: Callable[..., Any], message: Any, ctx: TaskContext
    ) -> Succeeded | Failed | ManualRetryRequest:
        """Run middleware + handler; turn what happened into an outcome."""
        try:
            async with AsyncExitStack() as stack:
                for mw in self.middleware:
                    await stack.enter_async_context(mw(message, ctx))
                hit = self._async_cache.get(id(handler))
                if hit is None or hit[0] is not handler:
                    hit = self._async_cache[id(handler)] = (handler, _is_async(handler))
                if hit[1]:
                    result = await handler(message, ctx)
                else:
                    result = await anyio.to_thread.run_sync(
                        partial(handler, message, ctx), limiter=self.thread_limiter
                    )
        except ManualRetryRequested as signal:
            return signal.request
        except Exception as exc:  # noqa: BLE001 - user handler: a failure becomes a decision
            self.stats.handler_failures += 1
            logger.warning(
                "%s: handler failed for task %s: %s: %s",
                self.consumer_name,
                ctx.task_id,
                type(exc).__name__,
                str(exc)[:200],
            )
            return Failed(exception_type=type(exc).__name__, exception_message=str(exc)[:1024])
        if result is not None and not isinstance(result, dict):
            result = {"value": result}  # a status result is a JSON object on the wire
        if result is not None and not _json_safe(result):
            self.stats.handler_failures += 1
            message_text = f"handler result of type {type(result).__name__} is not JSON-serialisable"
            logger.warning("%s: task %s: %s", self.consumer_name, ctx.task_id, message_text)
            return Failed(
                exception_type="TypeError", exception_message=message_text, reason="invalid_result"
            )
        return Succeeded(result=result)


def _json_safe(value: Any) -> bool:
    """Whether ``value`` can be the ``result`` of a status event on the wire."""
    try:
        dumps(value)
    except (ContractError, TypeError, ValueError):
        return False
    return True


HandlerT = Callable[[Any, TaskContext], Awaitable[Any] | Any]
