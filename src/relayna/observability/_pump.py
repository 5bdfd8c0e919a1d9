"""Delivery of observations: the bounded pump and the sink protocols.

A runtime never awaits a sink on its hot path. It calls
:meth:`ObservationPump.emit`, which puts the event on a bounded memory object
stream without blocking; when the buffer is full the event is dropped and
counted (:attr:`ObservationPump.dropped`). The pump's :meth:`ObservationPump.run`
task lives in the runtime's task group and hands events to the sink one by
one (or in batches to a :class:`BatchObservationSink`); a sink that raises is
counted and logged, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeAlias, runtime_checkable

import anyio
from anyio.abc import TaskStatus

from relayna.observability._observations import Observation

__all__ = [
    "BatchObservationSink",
    "MemoryObservationCollector",
    "ObservationPump",
    "ObservationSink",
]

logger = logging.getLogger("relayna.observability")


#: A sink receives observations one at a time.
ObservationSink: TypeAlias = Callable[[Observation], Awaitable[None]]


@runtime_checkable
class BatchObservationSink(Protocol):
    """A sink that also takes several observations at once (one round trip).

    The pump hands it everything queued (up to its batch size) per call.
    """

    async def __call__(self, event: Observation) -> None: ...

    async def send_batch(self, events: Sequence[Observation]) -> None: ...


class MemoryObservationCollector:
    """A sink that keeps every observation in a list (tests, ``relayna dev``)."""

    def __init__(self) -> None:
        self.events: list[Observation] = []

    async def __call__(self, event: Observation) -> None:
        self.events.append(event)

    def of_type(self, kind: type[Observation]) -> list[Observation]:
        return [e for e in self.events if isinstance(e, kind)]


class ObservationPump:
    """Bounded, non-blocking delivery of observations to one sink.

    ``emit`` never blocks: a full buffer drops the event and counts it. Start
    :meth:`run` in the owning task group; it ends when cancelled (pending
    events are dropped and counted) or after :meth:`close`.
    """

    def __init__(
        self, sink: ObservationSink | None, *, buffer: int = 1024, max_batch: int = 256
    ) -> None:
        self._sink = sink
        self._batch = sink.send_batch if isinstance(sink, BatchObservationSink) else None
        self._max_batch = max(1, max_batch)
        self._send, self._receive = anyio.create_memory_object_stream[Observation](
            max_buffer_size=buffer if sink is not None else 0
        )
        self.emitted = 0
        self.dropped = 0
        self.sink_errors = 0

    @property
    def enabled(self) -> bool:
        return self._sink is not None

    def emit(self, event: Observation) -> None:
        """Queue ``event`` for the sink; drop (and count) it when the buffer is full."""
        if self._sink is None:
            return
        try:
            self._send.send_nowait(event)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.dropped += 1
        else:
            self.emitted += 1

    def close(self) -> None:
        """No more events: :meth:`run` returns after delivering what is queued."""
        self._send.close()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self._sink is None:
            return
        try:
            async with self._receive:
                async for event in self._receive:
                    if self._batch is not None:
                        await self._send_batch(self._batch, event)
                        continue
                    try:
                        await self._sink(event)
                    except Exception:  # the sink is user code
                        self.sink_errors += 1
                        logger.exception("observation sink failed for %s", event.event_type)
        finally:
            self.dropped += self._receive.statistics().current_buffer_used

    async def _send_batch(
        self, send: Callable[[Sequence[Observation]], Awaitable[None]], first: Observation
    ) -> None:
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                batch.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        try:
            await send(batch)
        except Exception:  # the sink is user code
            self.sink_errors += 1
            logger.exception("observation sink failed for a batch of %d", len(batch))
