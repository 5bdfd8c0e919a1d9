"""``GroupCommit``: the store steps of one worker's concurrent deliveries, one call per batch.

:meth:`GroupCommit.run` (in the worker's task group) owns ``executors``
tasks; each takes every step waiting (up to ``max_batch``) and runs them in
one :meth:`~GroupCommit.call`. While one call is in flight, the next batch
gathers, so a busy worker pays about one store round trip per batch, not one
per step. Each caller waits for its own step's answer; a failed call fails
every step it carried, a step the call answers with an exception fails only
its own caller. Without a running batcher, :meth:`~GroupCommit.step` makes
a call of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

import anyio
import attrs
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from relayna.errors import RelaynaError, StoreError

__all__ = ["GroupCommit"]

S = TypeVar("S")
R = TypeVar("R")


@attrs.define(eq=False)
class _Job(Generic[S, R]):
    item: S
    done: anyio.Event = attrs.field(factory=anyio.Event)
    result: R | None = None
    error: Exception | None = None

    def fail(self, error: Exception) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


@attrs.define(eq=False)
class GroupCommit(Generic[S, R]):
    """Batch steps of type ``S`` answered with ``R`` (see the module docs);
    subclasses define :meth:`call`."""

    max_batch: int = attrs.field(default=64, kw_only=True)
    executors: int = attrs.field(default=2, kw_only=True)
    buffer: int = attrs.field(default=1024, kw_only=True)
    #: Store calls made, and steps they carried (steps / calls = mean batch size).
    calls: int = attrs.field(default=0, kw_only=True)
    steps: int = attrs.field(default=0, kw_only=True)
    _send: MemoryObjectSendStream[_Job[S, R]] | None = attrs.field(init=False, default=None)

    async def call(self, items: Sequence[S]) -> Sequence[R | Exception]:
        """One store call for ``items``: an answer (or the exception) per item."""
        raise NotImplementedError

    async def step(self, item: S) -> R:
        """Run ``item`` with whatever else is waiting.

        Raises:
            StoreError: the store call failed (or the batcher stopped), or the
                exception the call answered for this step.
        """
        if self._send is None:
            self.calls += 1
            self.steps += 1
            [result] = await self.call([item])
            if isinstance(result, Exception):
                raise result
            return result
        job: _Job[S, R] = _Job(item)
        await self._send.send(job)
        await job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve :meth:`step` until cancelled; waiting steps then fail with StoreError."""
        send, receive = anyio.create_memory_object_stream[_Job[S, R]](self.buffer)
        self._send = send
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(self.executors):
                    tg.start_soon(self._execute, receive.clone())
                task_status.started()
        finally:
            self._send = None
            stopped = StoreError("the worker's store step batcher stopped")
            while True:
                try:
                    receive.receive_nowait().fail(stopped)
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
            send.close()
            receive.close()

    async def _execute(self, receive: MemoryObjectReceiveStream[_Job[S, R]]) -> None:
        async with receive:
            async for first in receive:
                jobs = [first]
                while len(jobs) < self.max_batch:
                    try:
                        jobs.append(receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                try:
                    self.calls += 1
                    self.steps += len(jobs)
                    results = await self.call([job.item for job in jobs])
                except RelaynaError as exc:  # the callers raise it (StoreError, ScriptError)
                    for job in jobs:
                        job.fail(exc)
                else:
                    for job, result in zip(jobs, results, strict=True):
                        if isinstance(result, Exception):
                            job.fail(result)
                        else:
                            job.result = result
                            job.done.set()
                finally:
                    for job in jobs:  # cancelled mid-call: nobody waits forever
                        job.fail(StoreError("the worker's store step batcher stopped"))
