"""The consume loop shared by the consumers: workers, drain, reconnect.

Theory of operation
-------------------
One *session* = one ``broker.consume(queue, prefetch=n)`` block. Inside it a
reader task pulls deliveries and hands each, through an unbuffered memory
object stream, to one of ``n`` worker tasks (``n == prefetch``, so prefetch 1
keeps per-consumer ordering). A worker processes one delivery inside its own
``CancelScope(shield=True)``: cancelling the consumer does not interrupt a
handler half-way.

Shutdown (cancellation of ``run``): the reader stops taking deliveries at
once (no delivery *starts* after cancel), then sets the deadline of every
in-flight shielded scope to ``now + drain_timeout`` (the "drain"). Handlers
that finish in time settle normally (effects, then ack); the others are
cancelled at the deadline and their deliveries are nack-requeued. Every
delivery the reader took is tracked until settled; anything left unsettled
(e.g. lost between reader and worker by a cancellation) is nack-requeued in a
shielded, time-bounded cleanup before the consume block is left
(``basic.cancel``; the broker requeues whatever is still unacked).

Reconnect: a session that fails with a transport error is re-run by
:func:`relayna._supervise.supervise` with exponential backoff.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import anyio
from anyio import CancelScope
from anyio.streams.memory import MemoryObjectReceiveStream

from relayna.errors import BrokerError
from relayna.transport import Broker, Delivery

from ._settle import ConsumerStats

__all__ = ["Session", "requeue_quietly"]

logger = logging.getLogger("relayna.consumer")

#: Upper bound for one settle call during cleanup.
SETTLE_TIMEOUT = 5.0


async def requeue_quietly(delivery: Delivery, stats: ConsumerStats) -> None:
    """nack(requeue=True) in a shielded, bounded scope; failures are counted + logged."""
    if delivery.settled:
        return
    with CancelScope(shield=True), anyio.move_on_after(SETTLE_TIMEOUT):
        try:
            await delivery.nack(requeue=True)
            stats.drain_requeued += 1
        except BrokerError as exc:
            # The channel is gone: the broker requeues unacked deliveries itself.
            stats.settle_errors += 1
            logger.warning("requeue of delivery %s failed: %r", delivery.delivery_tag, exc)


class Session:
    """One consume block with ``prefetch`` workers (see module docstring)."""

    def __init__(
        self,
        *,
        broker: Broker,
        queue: str,
        prefetch: int,
        process: Callable[[Delivery], Awaitable[None]],
        drain_timeout: float,
        stats: ConsumerStats,
    ) -> None:
        self._broker = broker
        self._queue = queue
        self._prefetch = prefetch
        self._process = process
        self._drain_timeout = drain_timeout
        self._stats = stats
        self._inflight: set[CancelScope] = set()
        self._taken: dict[int, Delivery] = {}
        self._draining = False
        self._drain_deadline = math.inf
        self._reader_scope = CancelScope()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def start_drain(self, timeout: float | None = None) -> None:
        """Give in-flight work ``timeout`` (default ``drain_timeout``) more seconds."""
        self._draining = True
        deadline = anyio.current_time() + (self._drain_timeout if timeout is None else timeout)
        # A drain only ever gets shorter: a later, longer call (the cancellation
        # arriving after ``end_drain``) must not give work more time.
        self._drain_deadline = min(self._drain_deadline, deadline)
        for scope in self._inflight:
            scope.deadline = min(scope.deadline, self._drain_deadline)

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking deliveries and start the drain (cancellation of ``run``'s caller)."""
        self._reader_scope.cancel()
        self.start_drain(timeout)

    async def run(self, ready: Callable[[], None]) -> None:
        """Consume until cancelled (then drain) or until the consumer fails.

        Raises:
            BrokerError: the consumer or its connection failed (after the drain).
        """
        error: BrokerError | None = None
        send, receive = anyio.create_memory_object_stream[Delivery](0)
        async with self._broker.consume(self._queue, prefetch=self._prefetch) as consumer:
            ready()
            try:
                async with anyio.create_task_group() as tg:
                    for _ in range(self._prefetch):
                        tg.start_soon(self._worker, receive.clone())
                    receive.close()
                    try:
                        async with send:
                            with self._reader_scope:
                                async for delivery in consumer:
                                    self._taken[id(delivery)] = delivery
                                    # Hand buffered deliveries to every idle worker in
                                    # one go (no task switch each): their publishes and
                                    # acks then leave the connection in one write.
                                    try:
                                        send.send_nowait(delivery)
                                    except anyio.WouldBlock:
                                        await send.send(delivery)
                                error = BrokerError(f"consumer of {self._queue!r} ended")
                    except BrokerError as exc:
                        error = exc
                    finally:
                        self.start_drain()
            finally:
                for delivery in list(self._taken.values()):
                    await requeue_quietly(delivery, self._stats)
                self._taken.clear()
        if error is not None:
            raise error

    async def _worker(self, receive: MemoryObjectReceiveStream[Delivery]) -> None:
        async with receive:
            async for delivery in receive:
                with CancelScope(shield=True) as scope:
                    if self._draining:
                        scope.deadline = self._drain_deadline
                    self._inflight.add(scope)
                    try:
                        await self._process(delivery)
                    finally:
                        self._inflight.discard(scope)
                        if not delivery.settled:
                            await requeue_quietly(delivery, self._stats)
                        self._taken.pop(id(delivery), None)
