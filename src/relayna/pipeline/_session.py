"""The run owner: :class:`PipelineSession` (an async context manager)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from operator import itemgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import anyio
from anyio import EndOfStream, WouldBlock
from anyio.abc import TaskGroup
from anyio.lowlevel import checkpoint

from relayna.errors import sole_exception

from ._errors import ErrorPolicy, Failure, PipelineError
from ._index import Index
from ._run import CHECKPOINT_EVERY, DEFAULT_BUFFER_SIZE, Msg, Run, Rx, Tx, feed_source

if TYPE_CHECKING:
    from ._base import Step

__all__ = ["PipelineSession"]

R = TypeVar("R")

_by_key = itemgetter(0)


async def _run_stage(run: Run, stage: int, step: Step[Any, Any], rx: Rx, tx: Tx) -> None:
    with run.scopes[stage], rx, tx:
        await step._run(run, stage, rx, tx)


async def _run_source(run: Run, data: Iterable[Any] | AsyncIterable[Any], tx: Tx) -> None:
    with run.scopes[0], tx:
        await feed_source(run, data, tx)


def _single_exception(group: BaseExceptionGroup[BaseException]) -> Exception | None:
    """The only non-cancellation leaf of ``group`` if there is exactly one."""
    sole = sole_exception(group)
    return sole if isinstance(sole, Exception) else None


class PipelineSession(Generic[R]):
    """One run of a pipeline; owns the task group of all its stages.

    Use as ``async with pipeline.open(data) as session:``. Inside the block:

    * ``async for result in session`` — results in completion order
      (:class:`PipelineError` values too under ``COLLECT``);
    * ``async for index, result in session.indexed()`` — the same with positions;
    * ``await session.results()`` — everything not consumed yet, in index order;
    * ``session.cancel()`` — stop the run; the block then exits normally.

    Cancellation behaviour: leaving the block (normally, by ``break``, by an
    exception or by cancellation of the caller's scope) cancels every stage,
    waits for them (every ``finally`` runs, async-generator input is closed
    with a shielded, time-bounded ``aclose``) and never hangs. A FAIL_FAST
    failure cancels the body too and is raised from the block as one
    :class:`PipelineError`, never wrapped in an exception group.
    """

    def __init__(
        self,
        steps: Sequence[Step[Any, Any]],
        data: Iterable[Any] | AsyncIterable[Any],
        error_policy: ErrorPolicy,
        *,
        on_result: Callable[[Any], Awaitable[Any] | Any] | None = None,
        on_error: Callable[[PipelineError], Awaitable[Any] | Any] | None = None,
    ) -> None:
        if not isinstance(error_policy, ErrorPolicy):
            raise TypeError(f"error_policy must be an ErrorPolicy, got {error_policy!r}")
        self._steps = steps
        self._data = data
        self._policy = error_policy
        self._on_result = on_result
        self._on_error = on_error
        self._tg: TaskGroup | None = None
        self._run: Run | None = None
        self._rx: Rx | None = None
        self._streams: list[Rx | Tx] = []
        self._budget = CHECKPOINT_EVERY

    @property
    def error_policy(self) -> ErrorPolicy:
        return self._policy

    async def __aenter__(self) -> Self:
        if self._tg is not None:
            raise RuntimeError("a PipelineSession can only be entered once")
        sizes = [DEFAULT_BUFFER_SIZE, *(step.buffer_size for step in self._steps)]
        links = [anyio.create_memory_object_stream[Msg](size) for size in sizes]
        for tx, rx in links:
            self._streams += (tx, rx)
        self._tg = tg = anyio.create_task_group()
        await tg.__aenter__()
        self._run = run = Run(self._policy, len(self._steps) + 1, tg.cancel_scope)
        tg.start_soon(_run_source, run, self._data, links[0][0])
        for stage, step in enumerate(self._steps, start=1):
            tg.start_soon(_run_stage, run, stage, step, links[stage - 1][1], links[stage][0])
        self._rx = links[-1][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._tg is not None
        assert self._run is not None
        self._tg.cancel_scope.cancel()
        single: Exception | None = None
        try:
            suppress = bool(await self._tg.__aexit__(exc_type, exc, tb))
        except BaseExceptionGroup as group:
            single = _single_exception(group)
            if single is None:
                raise
            suppress = False
        finally:
            for stream in self._streams:
                stream.close()
        if single is not None:
            raise single
        if self._run.error is not None and (exc_type is None or suppress):
            raise self._run.error
        return suppress

    def cancel(self) -> None:
        """Cancel the run (and the body of the ``async with`` block)."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # -- consuming ---------------------------------------------------------------

    async def _next_msg(self) -> Msg | None:
        rx = self._rx
        if rx is None:
            raise RuntimeError("use the session inside 'async with'")
        while True:
            try:
                key, value = rx.receive_nowait()
            except WouldBlock:
                try:
                    key, value = await rx.receive()
                except EndOfStream:
                    return None
                self._budget = CHECKPOINT_EVERY
            except EndOfStream:
                return None
            else:
                self._budget -= 1
                if not self._budget:
                    self._budget = CHECKPOINT_EVERY
                    await checkpoint()
            if value.__class__ is Failure:
                error = value.error
                if self._on_error is not None:
                    outcome = self._on_error(error)
                    if inspect.isawaitable(outcome):
                        await outcome
                if self._policy is ErrorPolicy.COLLECT:
                    return key, error
                continue
            if self._on_result is not None:
                outcome = self._on_result(value)
                if inspect.isawaitable(outcome):
                    await outcome
            return key, value

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> R:
        msg = await self._next_msg()
        if msg is None:
            raise StopAsyncIteration
        value: R = msg[1]
        return value

    def indexed(self) -> _Indexed[R]:
        """Iterate ``(Index, result)`` pairs in completion order."""
        return _Indexed(self)

    async def results(self) -> list[R]:
        """All results not consumed yet, in index order."""
        pairs: list[Msg] = []
        append = pairs.append
        rx = self._rx
        if rx is None or self._on_result is not None or self._on_error is not None:
            while (msg := await self._next_msg()) is not None:
                append(msg)
        else:  # the hot path of collect(): no per-item coroutine
            collect_errors = self._policy is ErrorPolicy.COLLECT
            budget = CHECKPOINT_EVERY
            while True:
                try:
                    msg = rx.receive_nowait()
                except WouldBlock:
                    try:
                        msg = await rx.receive()
                    except EndOfStream:
                        break
                    budget = CHECKPOINT_EVERY
                except EndOfStream:
                    break
                else:
                    budget -= 1
                    if not budget:
                        budget = CHECKPOINT_EVERY
                        await checkpoint()
                value = msg[1]
                if value.__class__ is Failure:
                    if collect_errors:
                        append((msg[0], value.error))
                    continue
                append(msg)
        pairs.sort(key=_by_key)
        return [value for _, value in pairs]


class _Indexed(Generic[R]):
    __slots__ = ("_session",)

    def __init__(self, session: PipelineSession[R]) -> None:
        self._session = session

    def __aiter__(self) -> _Indexed[R]:
        return self

    async def __anext__(self) -> tuple[Index, R]:
        msg = await self._session._next_msg()
        if msg is None:
            raise StopAsyncIteration
        return Index.from_key(msg[0]), msg[1]
