"""Steps that need their whole input: Sort, Distinct, Reduce, GroupBy, ordered Take/Skip.

Each reads its input to the end (forwarding failures at once), puts the items
in index order, then computes and emits. Memory grows with the input; the
backpressure bound of a pipeline does not cover these steps.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

from ._base import DEFAULT_BUFFER_SIZE, Step
from ._errors import Failure
from ._run import Msg, call_maybe_async, receive, send

if TYPE_CHECKING:
    from ._run import Run, Rx, Tx

__all__ = ["Distinct", "GroupBy", "Reduce", "Sort", "ordered_skip", "ordered_take"]

T = TypeVar("T")
U = TypeVar("U")
K = TypeVar("K")

_by_key = itemgetter(0)
_by_sort_key = itemgetter(0)


class _NotProvided:
    def __repr__(self) -> str:
        return "NOT_PROVIDED"


NOT_PROVIDED: Any = _NotProvided()


class _Abort(Exception):
    """Internal: stop the step (downstream gone, or FAIL_FAST recorded)."""


async def _gather(run: Run, stage: int, rx: Rx, tx: Tx) -> list[Msg]:
    """Read everything, forward failures, return the items sorted by index."""
    items: list[Msg] = []
    while (msg := await receive(rx)) is not None:
        if msg[1].__class__ is Failure:
            await _emit(run, stage, tx, msg)
        else:
            items.append(msg)
    items.sort(key=_by_key)
    return items


async def _emit(run: Run, stage: int, tx: Tx, msg: Msg) -> None:
    if not await send(tx, msg):
        run.stop_upstream(stage, inclusive=True)
        raise _Abort


async def _item_failed(
    run: Run, stage: int, tx: Tx, name: str, key: tuple[int, ...], exc: Exception
) -> None:
    failure = run.item_failed(name, key, exc)
    if failure is None:
        raise _Abort
    await _emit(run, stage, tx, (key, failure))


class _Stateful(Step[T, U]):
    @property
    def max_in_flight(self) -> int | None:
        return None

    async def _run(self, run: Run, stage: int, rx: Rx, tx: Tx) -> None:
        try:
            items = await _gather(run, stage, rx, tx)
            await self._finish(run, stage, items, tx)
        except _Abort:
            return

    async def _finish(self, run: Run, stage: int, items: list[Msg], tx: Tx) -> None:
        raise NotImplementedError

    async def _keys(
        self, run: Run, stage: int, items: list[Msg], tx: Tx, key: Callable[[Any], Any] | None
    ) -> list[tuple[Any, Msg]]:
        """``(key(value), msg)`` per item; a failing key function is an item failure."""
        if key is None:
            return [(msg[1], msg) for msg in items]
        keyed: list[tuple[Any, Msg]] = []
        for msg in items:
            try:
                keyed.append((await call_maybe_async(key, msg[1]), msg))
            except Exception as exc:  # noqa: BLE001 - user code
                await _item_failed(run, stage, tx, self.name, msg[0], exc)
        return keyed

    async def _step_failed(self, run: Run, stage: int, tx: Tx, exc: Exception) -> None:
        failure = run.step_failed(self.name, exc)
        if failure is None:
            raise _Abort
        await _emit(run, stage, tx, ((0,), failure))


class Sort(_Stateful[T, T]):
    """All items sorted by ``key`` (sync or async); stable: ties keep index order.

    Outputs get fresh indices ``0..n-1`` in sorted order.
    """

    def __init__(
        self,
        key: Callable[[T], Any] | None = None,
        reverse: bool = False,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        super().__init__(buffer_size=buffer_size)
        self.key = key
        self.reverse = reverse

    async def _finish(self, run: Run, stage: int, items: list[Msg], tx: Tx) -> None:
        keyed = await self._keys(run, stage, items, tx, self.key)
        try:
            keyed.sort(key=_by_sort_key, reverse=self.reverse)
        except Exception as exc:  # noqa: BLE001 - user code
            await self._step_failed(run, stage, tx, exc)
            return
        for position, (_, msg) in enumerate(keyed):
            await _emit(run, stage, tx, ((position,), msg[1]))


class Distinct(_Stateful[T, T]):
    """Drop repeated items (by ``key``), keeping the first occurrence in index order.

    Unhashable keys are compared by ``==`` in a list; past
    ``max_unhashable_items`` such keys a ``RuntimeWarning`` is issued once
    (lookups get slow) and processing continues.
    """

    def __init__(
        self,
        key: Callable[[T], Any] | None = None,
        max_unhashable_items: int = 10_000,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        super().__init__(buffer_size=buffer_size)
        self.key = key
        self.max_unhashable_items = max_unhashable_items

    async def _finish(self, run: Run, stage: int, items: list[Msg], tx: Tx) -> None:
        seen: set[Any] = set()
        seen_unhashable: list[Any] = []
        warned = False
        for key_value, msg in await self._keys(run, stage, items, tx, self.key):
            try:
                if key_value in seen:
                    continue
                seen.add(key_value)
            except TypeError:
                if key_value in seen_unhashable:
                    continue
                if len(seen_unhashable) >= self.max_unhashable_items and not warned:
                    warned = True
                    warnings.warn(
                        f"Distinct tracks more than {self.max_unhashable_items} unhashable "
                        "keys; pass a key function returning hashable values",
                        RuntimeWarning,
                        stacklevel=1,
                    )
                seen_unhashable.append(key_value)
            await _emit(run, stage, tx, msg)


class Reduce(_Stateful[T, U]):
    """Fold all items, in index order, into exactly one output (index 0).

    ``reducer(acc, item)`` may be sync or async. Without ``initial`` the first
    item starts the fold; an empty input without ``initial`` is a failure
    (``ValueError``). A reducer that raises for an item is an item failure:
    under IGNORE/COLLECT that item is left out of the fold.
    """

    def __init__(
        self,
        reducer: Callable[[U, T], U] | Callable[[U, T], Awaitable[U]],
        initial: U = NOT_PROVIDED,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        super().__init__(buffer_size=buffer_size)
        self.reducer = reducer
        self.initial = initial

    async def _finish(self, run: Run, stage: int, items: list[Msg], tx: Tx) -> None:
        start = 0
        accumulator: Any = self.initial
        if accumulator is NOT_PROVIDED:
            if not items:
                error = ValueError("Cannot reduce empty sequence without initial value")
                await self._step_failed(run, stage, tx, error)
                return
            accumulator = items[0][1]
            start = 1
        for key, value in items[start:]:
            try:
                accumulator = await call_maybe_async(self.reducer, accumulator, value)
            except Exception as exc:  # noqa: BLE001 - user code
                await _item_failed(run, stage, tx, self.name, key, exc)
        await _emit(run, stage, tx, ((0,), accumulator))


class GroupBy(_Stateful[T, dict[Any, list[T]]]):
    """One dict ``key -> [items]``: keys in first-occurrence order, items in index order."""

    def __init__(self, key: Callable[[T], Any], *, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        super().__init__(buffer_size=buffer_size)
        self.key = key

    async def _finish(self, run: Run, stage: int, items: list[Msg], tx: Tx) -> None:
        groups: dict[Any, list[Any]] = {}
        for key_value, msg in await self._keys(run, stage, items, tx, self.key):
            try:
                groups.setdefault(key_value, []).append(msg[1])
            except TypeError as exc:
                await _item_failed(run, stage, tx, self.name, msg[0], exc)
        await _emit(run, stage, tx, ((0,), groups))


async def ordered_take(run: Run, stage: int, rx: Rx, tx: Tx, n: int) -> None:
    try:
        for msg in (await _gather(run, stage, rx, tx))[:n]:
            await _emit(run, stage, tx, msg)
    except _Abort:
        return


async def ordered_skip(run: Run, stage: int, rx: Rx, tx: Tx, n: int) -> None:
    try:
        for msg in (await _gather(run, stage, rx, tx))[n:]:
            await _emit(run, stage, tx, msg)
    except _Abort:
        return
