"""Map and Filter: the hot path.

Theory of operation
-------------------
A step starts with one worker task and grows its pool, up to
``concurrency``, only when the user function really suspends: the worker
starts the coroutine with ``coro.send(None)``; if that finishes it
(``StopIteration``) the function never waited, and the item costs no task
switch. If it yields, the worker adds a worker (when none is idle) and awaits
the rest of the coroutine through :class:`_Resume`, which forwards every
yield, send and throw exactly like ``yield from`` (so both backends'
cancellation reaches the function unchanged). CPU-bound or never-suspending
functions therefore run on one task with ``*_nowait`` link operations, and
I/O-bound ones fan out to ``concurrency`` tasks. No task is ever spawned per
item; at most ``concurrency`` items are in the step at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import CoroutineType
from typing import TYPE_CHECKING, Any, TypeVar, overload

import anyio
from anyio import BrokenResourceError, EndOfStream, WouldBlock
from anyio.abc import TaskGroup
from anyio.lowlevel import checkpoint

from ._base import DEFAULT_BUFFER_SIZE, DEFAULT_CONCURRENCY
from ._errors import Failure
from ._run import CHECKPOINT_EVERY
from ._steps import Pool

if TYPE_CHECKING:
    from ._run import Run, Rx, Tx

__all__ = ["Filter", "Map"]

T = TypeVar("T")
U = TypeVar("U")

#: Result types that are never awaitable: skips ``inspect.isawaitable`` (an ABC
#: check) per item for the common results of sync functions and predicates.
_PLAIN = frozenset({bool, int, float, str, bytes, tuple, list, dict, type(None)})


class _Resume:
    """Await the rest of a coroutine whose first step already ran and yielded ``first``."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._coro
        to_yield = self._first
        while True:
            try:
                sent = yield to_yield
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - forwarded into the coroutine
                try:
                    to_yield = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    to_yield = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class _PoolRun:
    """Per-run pool bookkeeping (steps are immutable and shared between runs)."""

    __slots__ = ("idle", "tg", "workers")

    def __init__(self, tg: TaskGroup) -> None:
        self.tg = tg
        self.workers = 1
        self.idle = 0


class _Apply(Pool[T, U]):
    _filter = False

    def __init__(self, fn: Callable[[Any], Any], concurrency: int, buffer_size: int) -> None:
        super().__init__(concurrency, buffer_size)
        if not callable(fn):
            raise TypeError(f"{type(self).__name__} needs a callable, got {fn!r}")
        self.fn = fn

    async def _run(self, run: Run, stage: int, rx: Rx, tx: Tx) -> None:
        async with anyio.create_task_group() as tg:
            pool = _PoolRun(tg)
            tg.start_soon(self._work, run, stage, rx, tx, pool)

    async def _work(self, run: Run, stage: int, rx: Rx, tx: Tx, pool: _PoolRun) -> None:
        fn = self.fn
        keep_mode = self._filter
        name = self.name
        limit = self.concurrency
        budget = CHECKPOINT_EVERY
        while True:
            try:
                key, value = rx.receive_nowait()
            except WouldBlock:
                pool.idle += 1
                try:
                    key, value = await rx.receive()
                except EndOfStream:
                    return
                finally:
                    pool.idle -= 1
                budget = CHECKPOINT_EVERY
            except EndOfStream:
                return
            else:
                budget -= 1
                if not budget:
                    budget = CHECKPOINT_EVERY
                    await checkpoint()
            if value.__class__ is not Failure:
                try:
                    result = fn(value)
                    if result.__class__ is CoroutineType:
                        try:
                            first = result.send(None)
                        except StopIteration as stop:
                            result = stop.value
                        else:
                            if not pool.idle and pool.workers < limit:
                                pool.workers += 1
                                pool.tg.start_soon(self._work, run, stage, rx, tx, pool)
                            result = await _Resume(result, first)
                    elif result.__class__ not in _PLAIN and inspect.isawaitable(result):
                        result = await result
                except Exception as exc:  # noqa: BLE001 - user code
                    value = run.item_failed(name, key, exc)
                    if value is None:
                        return
                else:
                    if not keep_mode:
                        value = result
                    elif not result:
                        continue
            msg = (key, value)
            try:
                tx.send_nowait(msg)
            except WouldBlock:
                try:
                    await tx.send(msg)
                except BrokenResourceError:
                    run.stop_upstream(stage, inclusive=True)
                    return
            except BrokenResourceError:
                run.stop_upstream(stage, inclusive=True)
                return


class Map(_Apply[T, U]):
    """Apply ``fn`` (sync or async) to every item, up to ``concurrency`` at a time.

    Results keep their item's index; ``stream`` yields them as they complete.
    """

    # The awaitable overload comes first: an ``async def`` also matches
    # ``Callable[[T], U]`` (with U = a coroutine), which would type the
    # results as coroutines instead of their values.
    @overload
    def __init__(
        self,
        fn: Callable[[T], Awaitable[U]],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None: ...
    @overload
    def __init__(
        self,
        fn: Callable[[T], U],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None: ...
    def __init__(
        self,
        fn: Callable[[T], Any],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        super().__init__(fn, concurrency, buffer_size)


class Filter(_Apply[T, T]):
    """Keep the items for which ``predicate`` (sync or async) is truthy."""

    _filter = True

    def __init__(
        self,
        predicate: Callable[[T], Any],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        super().__init__(predicate, concurrency, buffer_size)
