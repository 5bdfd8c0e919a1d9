"""Composition: :class:`Step`, :class:`Pipeline` and the ``|`` operator.

Pipelines are immutable values. Running one (``collect``/``stream``/``open``)
builds fresh links and tasks, so one pipeline can run many times, also
concurrently.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from ._errors import ErrorPolicy, PipelineError
from ._run import DEFAULT_BUFFER_SIZE, DEFAULT_CONCURRENCY
from ._session import PipelineSession

if TYPE_CHECKING:
    from ._run import Run, Rx, Tx

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_CONCURRENCY",
    "AsyncIteratorStep",
    "Pipeline",
    "Step",
]

T = TypeVar("T")
U = TypeVar("U")
V = TypeVar("V")

InputData: TypeAlias = Iterable[Any] | AsyncIterable[Any]
ResultCallback: TypeAlias = Callable[[Any], Awaitable[Any] | Any]
ErrorCallback: TypeAlias = Callable[[PipelineError], Awaitable[Any] | Any]


def _check_positive(name: str, value: int, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class Step(Generic[T, U]):
    """One stage of a pipeline. Subclasses implement :meth:`_run`.

    Args:
        buffer_size: capacity of the link this step writes to.
    """

    def __init__(self, *, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        self.buffer_size = _check_positive("buffer_size", buffer_size, 0)

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def max_in_flight(self) -> int | None:
        """Input items this step holds besides the links; None when unbounded (stateful)."""
        return 1

    async def _run(self, run: Run, stage: int, rx: Rx, tx: Tx) -> None:
        """Read ``(key, value)`` pairs from ``rx`` until end of stream, write results to ``tx``.

        Failures (``Failure`` values) must be forwarded unchanged. The caller
        closes ``rx`` and ``tx`` when this returns.
        """
        raise NotImplementedError

    def __or__(self, other: Step[U, V] | Pipeline[U, V]) -> Pipeline[T, V]:
        start: Pipeline[T, U] = Pipeline([self])
        return start | other

    def __ror__(self, data: Iterable[T] | AsyncIterable[T]) -> Pipeline[T, U]:
        return Pipeline([self], input_data=data)

    def then(self, other: Step[U, V] | Pipeline[U, V]) -> Pipeline[T, V]:
        return self | other

    def with_error_policy(self, error_policy: ErrorPolicy) -> Pipeline[T, U]:
        return Pipeline([self], error_policy=error_policy)

    def __repr__(self) -> str:
        return f"{self.name}()"


class AsyncIteratorStep(Step[Any, T]):
    """Source step adapting an async iterable; only valid as the first step.

    ``AsyncIteratorStep(agen) | Map(f)`` is the same as ``agen | Map(f)``: the
    pipeline's input is bound to the async iterable. An async generator is
    closed (``aclose``) when the run ends, however it ends.
    """

    def __init__(self, async_iterable: AsyncIterable[T]) -> None:
        super().__init__()
        if not isinstance(async_iterable, AsyncIterable):
            raise TypeError(f"expected an async iterable, got {type(async_iterable).__name__}")
        self.source = async_iterable


class Pipeline(Generic[T, U]):
    """An immutable chain of steps, optionally bound to input data.

    Args:
        steps: the steps, in order. A leading :class:`AsyncIteratorStep` binds the input.
        input_data: sync or async iterable (or None to pass it when running).
        error_policy: default policy of runs; each run may override it.

    Raises:
        TypeError: a non-step, or an AsyncIteratorStep after the first position.
        ValueError: input bound twice.
    """

    __slots__ = ("error_policy", "input_data", "steps")

    steps: tuple[Step[Any, Any], ...]
    input_data: InputData | None
    error_policy: ErrorPolicy

    def __init__(
        self,
        steps: Sequence[Step[Any, Any]],
        input_data: Iterable[T] | AsyncIterable[T] | None = None,
        error_policy: ErrorPolicy = ErrorPolicy.FAIL_FAST,
    ) -> None:
        if not isinstance(error_policy, ErrorPolicy):
            raise TypeError(f"error_policy must be an ErrorPolicy, got {error_policy!r}")
        step_list = list(steps)
        for step in step_list:
            if not isinstance(step, Step):
                raise TypeError(f"not a pipeline step: {step!r}")
        if step_list and isinstance(step_list[0], AsyncIteratorStep):
            if input_data is not None:
                raise ValueError("Input provided twice")
            first = step_list.pop(0)
            assert isinstance(first, AsyncIteratorStep)
            input_data = first.source
        if any(isinstance(step, AsyncIteratorStep) for step in step_list):
            raise TypeError("AsyncIteratorStep can only be the first step of a pipeline")
        object.__setattr__(self, "steps", tuple(step_list))
        object.__setattr__(self, "input_data", input_data)
        object.__setattr__(self, "error_policy", error_policy)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Pipeline is immutable; use |, then() or with_error_policy()")

    # -- composition -------------------------------------------------------------

    def __or__(self, other: Step[U, V] | Pipeline[U, V]) -> Pipeline[T, V]:
        if isinstance(other, Pipeline):
            if other.input_data is not None:
                raise ValueError("Input provided twice: the right-hand pipeline has input")
            return Pipeline([*self.steps, *other.steps], self.input_data, self.error_policy)
        if isinstance(other, Step):
            if isinstance(other, AsyncIteratorStep):
                raise TypeError("AsyncIteratorStep can only be the first step of a pipeline")
            return Pipeline([*self.steps, other], self.input_data, self.error_policy)
        return NotImplemented

    def __ror__(self, data: Iterable[T] | AsyncIterable[T]) -> Pipeline[T, U]:
        if self.input_data is not None:
            raise ValueError("Input provided twice")
        return Pipeline(list(self.steps), data, self.error_policy)

    def then(self, other: Step[U, V] | Pipeline[U, V]) -> Pipeline[T, V]:
        return self | other

    def with_error_policy(self, error_policy: ErrorPolicy) -> Pipeline[T, U]:
        return Pipeline(list(self.steps), self.input_data, error_policy)

    @property
    def backpressure_bound(self) -> int | None:
        """Most input items pulled ahead of a stalled consumer; None if a step is stateful.

        ``DEFAULT_BUFFER_SIZE (input link) + Σ step.buffer_size + Σ step.max_in_flight + 1``
        (the last 1 is the item the feeder holds while it waits to send). It
        counts items of the input; FlatMap and Batch change the item count on
        their output link, so the bound is exact for Map/Filter/Take/Skip chains.
        """
        held = [s.max_in_flight for s in self.steps]
        if any(h is None for h in held):
            return None
        return (
            DEFAULT_BUFFER_SIZE
            + sum(s.buffer_size for s in self.steps)
            + sum(h for h in held if h is not None)
            + 1
        )

    # -- running -----------------------------------------------------------------

    def _input(self, data: InputData | None) -> InputData:
        if data is not None and self.input_data is not None:
            raise ValueError("Input provided twice")
        chosen = data if data is not None else self.input_data
        if chosen is None:
            raise ValueError("No input provided")
        if not isinstance(chosen, Iterable | AsyncIterable):
            raise TypeError(f"input must be an iterable or async iterable, got {chosen!r}")
        return chosen

    def open(
        self,
        data: Iterable[T] | AsyncIterable[T] | None = None,
        error_policy: ErrorPolicy | None = None,
        *,
        on_result: ResultCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> PipelineSession[Any]:
        """A session running this pipeline: ``async with p.open(data) as session:``.

        The session owns a task group; every task of the run (the input feeder
        included) lives in it. Iterate the session for results in completion
        order, or ``await session.results()`` for the rest in index order.
        Leaving the block cancels all unfinished work, waits for every
        ``finally``, and closes an async-generator input.

        Raises:
            ValueError: input given twice or not at all (raised here, eagerly).
            PipelineError: from ``__aexit__``, on a FAIL_FAST failure or a
                failing input iterable.
        """
        return PipelineSession(
            self.steps,
            self._input(data),
            error_policy if error_policy is not None else self.error_policy,
            on_result=on_result,
            on_error=on_error,
        )

    def stream(
        self,
        data: Iterable[T] | AsyncIterable[T] | None = None,
        error_policy: ErrorPolicy | None = None,
        *,
        on_result: ResultCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> PipelineSession[Any]:
        """Results in completion order: ``async with p.stream(data) as results:``
        then ``async for r in results``. Same session as :meth:`open`."""
        return self.open(data, error_policy, on_result=on_result, on_error=on_error)

    async def collect(
        self,
        data: Iterable[T] | AsyncIterable[T] | None = None,
        error_policy: ErrorPolicy | None = None,
        *,
        on_result: ResultCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> list[Any]:
        """Run to completion; results in input order (by :class:`Index`).

        Under ``COLLECT``, :class:`PipelineError` values sit at their item's position.

        Raises:
            ValueError: input given twice or not at all.
            PipelineError: FAIL_FAST failure, or the input iterable raised.
        """
        async with self.open(data, error_policy, on_result=on_result, on_error=on_error) as s:
            results = await s.results()
        return results

    def __repr__(self) -> str:
        chain = " | ".join(repr(s) for s in self.steps)
        return f"Pipeline({chain}, error_policy={self.error_policy.name})"
