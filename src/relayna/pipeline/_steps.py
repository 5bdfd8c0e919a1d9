"""Streaming steps: FlatMap (a worker pool), Take, Skip, Batch.

FlatMap runs a fixed pool of ``concurrency`` worker tasks that
share the step's input link (no task per item). Each worker holds at most one
input item, so a step holds at most ``concurrency`` items besides its links.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from math import inf
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from anyio import CancelScope, EndOfStream, WouldBlock
from anyio.lowlevel import checkpoint

from ._base import DEFAULT_BUFFER_SIZE, DEFAULT_CONCURRENCY, Step, _check_positive
from ._errors import Failure
from ._index import Key
from ._run import ACLOSE_TIMEOUT, CHECKPOINT_EVERY, Msg, call_maybe_async, receive, send
from ._stateful import ordered_skip, ordered_take

if TYPE_CHECKING:
    from ._run import Run, Rx, Tx

__all__ = ["Batch", "FlatMap", "Pool", "Skip", "Take"]

T = TypeVar("T")
U = TypeVar("U")

_by_key = itemgetter(0)


class Pool(Step[T, U]):
    """A step run by ``concurrency`` identical worker tasks."""

    def __init__(self, concurrency: int, buffer_size: int) -> None:
        super().__init__(buffer_size=buffer_size)
        self.concurrency = _check_positive("concurrency", concurrency, 1)

    @property
    def max_in_flight(self) -> int | None:
        return self.concurrency

    async def _run(self, run: Run, stage: int, rx: Rx, tx: Tx) -> None:
        if self.concurrency == 1:
            await self._worker(run, stage, rx, tx)
            return
        async with anyio.create_task_group() as tg:
            for _ in range(self.concurrency):
                tg.start_soon(self._worker, run, stage, rx, tx)

    async def _worker(self, run: Run, stage: int, rx: Rx, tx: Tx) -> None:
        raise NotImplementedError


class FlatMap(Pool[T, U]):
    """Expand each item into an iterable or async iterable and flatten it.

    ``fn`` may be sync, async, or an async generator function. Output ``j`` of
    item ``i`` gets ``Index(i, Index(j))``. An async generator returned by
    ``fn`` is closed when its worker stops, including on cancellation.
    """

    def __init__(
        self,
        fn: Callable[[T], Iterable[U] | AsyncIterable[U] | Awaitable[Iterable[U]]],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        super().__init__(concurrency, buffer_size)
        if not callable(fn):
            raise TypeError(f"FlatMap needs a callable, got {fn!r}")
        self.fn = fn

    async def _worker(self, run: Run, stage: int, rx: Rx, tx: Tx) -> None:
        while (msg := await receive(rx)) is not None:
            key, value = msg
            if value.__class__ is Failure:
                ok = await send(tx, msg)
            else:
                ok = await self._expand(run, key, value, tx)
            if not ok:
                run.stop_upstream(stage, inclusive=True)
                return

    async def _expand(self, run: Run, key: tuple[int, ...], value: Any, tx: Tx) -> bool:
        """Send the expansion of one item; False if the output is gone or FAIL_FAST hit."""
        sub = 0
        try:
            produced = await call_maybe_async(self.fn, value)
            if isinstance(produced, AsyncIterable):
                iterator = aiter(produced)
                try:
                    async for out in iterator:
                        if not await send(tx, ((*key, sub), out)):
                            return False
                        sub += 1
                finally:
                    if isinstance(iterator, AsyncGenerator):
                        with anyio.move_on_after(ACLOSE_TIMEOUT, shield=True):
                            await iterator.aclose()
            else:
                for out in produced:
                    if not await send(tx, ((*key, sub), out)):
                        return False
                    sub += 1
        except Exception as exc:  # noqa: BLE001 - user code
            failure = run.item_failed(self.name, key, exc)
            if failure is None:
                return False
            return await send(tx, ((*key, sub), failure))
        return True


class _Counted(Step[T, T]):
    """Shared by Take and Skip: a count ``n`` and first-to-arrive vs lowest-index order."""

    def __init__(
        self, n: int, ordered: bool = False, *, buffer_size: int = DEFAULT_BUFFER_SIZE
    ) -> None:
        super().__init__(buffer_size=buffer_size)
        self.n = _check_positive("n", n, 0)
        self.ordered = ordered

    @property
    def max_in_flight(self) -> int | None:
        return None if self.ordered else 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n}, ordered={self.ordered})"


class Take(_Counted[T]):
    """The first ``n`` items.

    ``ordered=False`` (default): the first ``n`` to *arrive*; then every step
    before it is cancelled, so the input stops being pulled early.
    ``ordered=True``: the ``n`` lowest indices; reads the whole input.
    Failures are forwarded and do not count.
    """

    async def _run(self, run: Run, stage: int, rx: Rx, tx: Tx) -> None:
        if self.ordered:
            await ordered_take(run, stage, rx, tx, self.n)
            return
        remaining = self.n
        while remaining:
            msg = await receive(rx)
            if msg is None:
                return
            if msg[1].__class__ is not Failure:
                remaining -= 1
            if not await send(tx, msg):
                run.stop_upstream(stage, inclusive=True)
                return
        run.stop_upstream(stage)


class Skip(_Counted[T]):
    """All but the first ``n`` items (first to arrive, or lowest indices if ``ordered``)."""

    async def _run(self, run: Run, stage: int, rx: Rx, tx: Tx) -> None:
        if self.ordered:
            await ordered_skip(run, stage, rx, tx, self.n)
            return
        to_skip = self.n
        while (msg := await receive(rx)) is not None:
            if to_skip and msg[1].__class__ is not Failure:
                to_skip -= 1
                continue
            if not await send(tx, msg):
                run.stop_upstream(stage, inclusive=True)
                return


class Batch(Step[T, list[T]]):
    """Lists of up to ``size`` items, emitted as they fill (the last may be short).

    With ``timeout`` (seconds), a non-empty batch is also emitted when that
    long has passed since its first item arrived: a streaming batcher.

    Order: a batch holds its items in index order. A batch is a new item made
    by this step, so its position is its emission order: the n-th batch
    emitted has ``Index(n)`` and is the n-th that ``collect()`` returns, and
    the final partial batch always comes last. Items reach the batcher in
    completion order, so after a concurrent ``Map`` the items of a batch are
    the first ``size`` to complete, not ``size`` neighbours of the input.
    Failed items passing through (ErrorPolicy IGNORE / COLLECT) are numbered
    in the same sequence, at the point where they pass.
    """

    def __init__(
        self,
        size: int,
        *,
        timeout: float | None = None,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        super().__init__(buffer_size=buffer_size)
        self.size = _check_positive("size", size, 1)
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        self.timeout = timeout

    @property
    def max_in_flight(self) -> int | None:
        return self.size

    async def _run(self, run: Run, stage: int, rx: Rx, tx: Tx) -> None:
        # Hot loop: ``receive_nowait`` while items are buffered (no coroutine, no
        # clock read, no cancel scope per item) and a checkpoint every
        # CHECKPOINT_EVERY items. With ``timeout``, the clock is read once per
        # batch (its deadline), a cancel scope is made only when the step is
        # about to wait with a non-empty batch, and the deadline is also checked
        # at each budget checkpoint so a steady flow cannot hold a batch forever.
        size = self.size
        timeout = self.timeout
        batch: list[Msg] = []
        deadline = inf
        budget = CHECKPOINT_EVERY
        emitted = 0  # what this step sent so far: the position of the next output
        while True:
            msg: Msg | None
            try:
                msg = rx.receive_nowait()
            except WouldBlock:
                msg = None
                try:
                    if batch and timeout is not None:
                        with CancelScope(deadline=deadline) as waited:
                            msg = await rx.receive()
                        if waited.cancelled_caught:
                            if not await self._emit(batch, tx, (emitted,)):
                                break
                            batch, emitted = [], emitted + 1
                            continue
                    else:
                        msg = await rx.receive()
                except EndOfStream:
                    msg = None
                budget = CHECKPOINT_EVERY
            except EndOfStream:
                msg = None
            else:
                budget -= 1
                if not budget:
                    budget = CHECKPOINT_EVERY
                    if batch and timeout is not None and anyio.current_time() >= deadline:
                        if not await self._emit(batch, tx, (emitted,)):
                            break
                        batch, emitted = [], emitted + 1
                    await checkpoint()
            if msg is None:
                if batch:
                    await self._emit(batch, tx, (emitted,))
                return
            if msg[1].__class__ is Failure:
                if not await send(tx, ((emitted,), msg[1])):
                    break
                emitted += 1
                continue
            if not batch and timeout is not None:
                deadline = anyio.current_time() + timeout
            batch.append(msg)
            if len(batch) >= size:
                if not await self._emit(batch, tx, (emitted,)):
                    break
                batch, emitted = [], emitted + 1
        run.stop_upstream(stage, inclusive=True)

    @staticmethod
    async def _emit(batch: list[Msg], tx: Tx, position: Key) -> bool:
        batch.sort(key=_by_key)
        return await send(tx, (position, [value for _, value in batch]))

    def __repr__(self) -> str:
        return f"Batch({self.size}, timeout={self.timeout})"
