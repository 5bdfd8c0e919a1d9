"""``WriteBatcher``: the hub's store writes, several script calls per round trip.

Each lane of the hub has at most one *group* in flight: the events it has
buffered, in order (it awaits :meth:`WriteBatcher.write_group` before taking
more). A group stays contiguous inside one pipeline, and a pipeline runs its
commands in order on one connection, so per-task order is kept.
``concurrency`` flushers each take the queued groups (up to ``max_batch``
events, at least one group) and send them with
:meth:`StatusStore.write_many`: under load the batches fill up by themselves,
at low rates every event goes out at once, alone.
"""

from __future__ import annotations

import math

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from relayna.errors import StoreError
from relayna.status._event import EventDict
from relayna.status._store import StatusStore

__all__ = ["WriteBatcher"]


class _Pending:
    __slots__ = ("done", "error", "events", "results")

    def __init__(self, events: list[EventDict]) -> None:
        self.events = events
        self.done = anyio.Event()
        self.results: list[bool | StoreError] = []
        self.error: Exception | None = None


class WriteBatcher:
    """Run :meth:`run` in a task group, then call :meth:`write` from any task."""

    def __init__(self, store: StatusStore, *, max_batch: int = 64, concurrency: int = 4) -> None:
        if max_batch < 1 or concurrency < 1:
            raise ValueError("max_batch and concurrency must be >= 1")
        self._store = store
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.round_trips = 0
        self._send: MemoryObjectSendStream[_Pending]
        self._receive: MemoryObjectReceiveStream[_Pending]
        self._send, self._receive = anyio.create_memory_object_stream[_Pending](math.inf)

    async def write(self, event: EventDict) -> bool:
        """What :meth:`StatusStore.write` returns; raises its errors likewise."""
        (result,) = await self.write_group([event])
        if isinstance(result, StoreError):
            raise result
        return result

    async def write_group(self, events: list[EventDict]) -> list[bool | StoreError]:
        """:meth:`StatusStore.write_many` of ``events``, sent in order in one batch."""
        pending = _Pending(events)
        self._send.send_nowait(pending)
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.results

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(self.concurrency):
                tg.start_soon(self._flush)

    async def _flush(self) -> None:
        async for first in self._receive:
            batch = [first]
            size = len(first.events)
            while size < self.max_batch:
                try:
                    more = self._receive.receive_nowait()
                except anyio.WouldBlock:
                    break
                batch.append(more)
                size += len(more.events)
            results: list[bool | StoreError] = []
            error: Exception | None = None
            try:
                results = await self._store.write_many([e for p in batch for e in p.events])
            except Exception as exc:  # noqa: BLE001  # re-raised in every writer of the batch
                error = exc
            self.round_trips += 1
            start = 0
            for pending in batch:
                pending.error = error
                pending.results = results[start : start + len(pending.events)]
                start += len(pending.events)
                pending.done.set()
