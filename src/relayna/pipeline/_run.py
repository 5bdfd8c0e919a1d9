"""Per-run state and the channel helpers every stage uses.

Theory of operation
-------------------
A run is a chain of *stages*: stage 0 feeds the input, stage ``k`` runs step
``k``. Stage ``k`` reads link ``k - 1`` and writes link ``k``; links are
bounded anyio memory object streams carrying ``(key, value)`` pairs. Every
stage runs in its own :class:`anyio.CancelScope` inside the session's task
group, and closes both of its link ends when it leaves, so:

* a stage that finishes closes its output: the next stage sees
  ``EndOfStream`` once all of its upstream is done;
* a stage that stops reading (``Take``) cancels the scopes of all stages
  before it (``stop_upstream``); a stage whose output is closed from the
  other side does the same for itself and everything before it;
* a FAIL_FAST failure records the first :class:`PipelineError` and cancels the
  session's task group (including the consumer's body).

The hot path tries ``send_nowait``/``receive_nowait`` first and only awaits on
``WouldBlock``; since a successful ``*_nowait`` is not a checkpoint, loops call
:func:`anyio.lowlevel.checkpoint` every ``CHECKPOINT_EVERY`` items.
"""

from __future__ import annotations

import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Generator,
    Iterable,
)
from typing import Any, TypeAlias

import anyio
from anyio import BrokenResourceError, CancelScope, EndOfStream, WouldBlock
from anyio.lowlevel import checkpoint
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._errors import ErrorPolicy, Failure, PipelineError
from ._index import Index, Key

__all__ = [
    "CHECKPOINT_EVERY",
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_CONCURRENCY",
    "Msg",
    "Run",
    "Rx",
    "Tx",
    "call_maybe_async",
    "feed_source",
    "receive",
    "send",
]

Msg: TypeAlias = tuple[Key, Any]
Rx: TypeAlias = MemoryObjectReceiveStream[Msg]
Tx: TypeAlias = MemoryObjectSendStream[Msg]

#: Default number of worker tasks of Map / Filter / FlatMap.
DEFAULT_CONCURRENCY = 100
#: Default capacity of each link (the memory stream after a step, and after the input).
DEFAULT_BUFFER_SIZE = 16
#: A loop that keeps succeeding with ``*_nowait`` checkpoints after this many items.
CHECKPOINT_EVERY = 64
#: Upper bound for closing an async-generator input after the run stopped.
ACLOSE_TIMEOUT = 5.0

_END = object()


class Run:
    """State of one execution of a pipeline (a pipeline value may run many times)."""

    __slots__ = ("error", "policy", "scopes", "session_scope")

    def __init__(self, policy: ErrorPolicy, n_stages: int, session_scope: CancelScope) -> None:
        self.policy = policy
        self.scopes = [CancelScope() for _ in range(n_stages)]
        self.session_scope = session_scope
        self.error: PipelineError | None = None

    def fail(self, error: PipelineError) -> None:
        """Record the first fatal error and cancel the whole run."""
        if self.error is None:
            self.error = error
        self.session_scope.cancel()

    def item_failed(self, step_name: str, key: Key, exc: Exception) -> Failure | None:
        """Turn a user exception into a Failure to forward, or None under FAIL_FAST."""
        error = PipelineError(
            f"step {step_name} failed on item {Index.from_key(key)!r}",
            exc,
            step_name=step_name,
            item_index=Index.from_key(key),
        )
        if self.policy is ErrorPolicy.FAIL_FAST:
            self.fail(error)
            return None
        return Failure(error)

    def step_failed(self, step_name: str, exc: Exception) -> Failure | None:
        """A failure of a whole (stateful) step, not of one item."""
        error = PipelineError(f"step {step_name} failed", exc, step_name=step_name)
        if self.policy is ErrorPolicy.FAIL_FAST:
            self.fail(error)
            return None
        return Failure(error)

    def stop_upstream(self, stage: int, *, inclusive: bool = False) -> None:
        """Cancel every stage before ``stage`` (and ``stage`` itself if inclusive)."""
        for scope in self.scopes[: stage + 1 if inclusive else stage]:
            scope.cancel()


async def receive(rx: Rx) -> Msg | None:
    """Next message, or None at end of stream (awaits; use for non-hot paths)."""
    try:
        return rx.receive_nowait()
    except WouldBlock:
        try:
            return await rx.receive()
        except EndOfStream:
            return None
    except EndOfStream:
        return None


async def send(tx: Tx, msg: Msg) -> bool:
    """Send ``msg``; False when the receiving side is gone."""
    try:
        tx.send_nowait(msg)
    except WouldBlock:
        try:
            await tx.send(msg)
        except BrokenResourceError:
            return False
    except BrokenResourceError:
        return False
    return True


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        return await result
    return result


async def feed_source(run: Run, data: Iterable[Any] | AsyncIterable[Any], tx: Tx) -> None:
    """Stage 0: pull the input lazily and send ``((i,), value)`` pairs."""
    if isinstance(data, AsyncIterable):
        await _feed_async(run, data, tx)
    else:
        await _feed_sync(run, data, tx)


def _source_error(exc: Exception, position: int) -> PipelineError:
    return PipelineError(
        f"input iterable raised before item {position}",
        exc,
        step_name="source",
        item_index=Index(position),
    )


async def _feed_sync(run: Run, data: Iterable[Any], tx: Tx) -> None:
    iterator = iter(data)
    try:
        position = 0
        budget = CHECKPOINT_EVERY
        while True:
            try:
                value = next(iterator)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - user code
                run.fail(_source_error(exc, position))
                return
            msg = ((position,), value)
            position += 1
            try:
                tx.send_nowait(msg)
            except WouldBlock:
                try:
                    await tx.send(msg)
                except BrokenResourceError:
                    return
                budget = CHECKPOINT_EVERY
            except BrokenResourceError:
                return
            else:
                budget -= 1
                if not budget:
                    budget = CHECKPOINT_EVERY
                    await checkpoint()
    finally:
        if isinstance(iterator, Generator):
            iterator.close()


async def _feed_async(run: Run, data: AsyncIterable[Any], tx: Tx) -> None:
    iterator = aiter(data)
    try:
        position = 0
        budget = CHECKPOINT_EVERY
        while True:
            try:
                value = await anext(iterator, _END)
            except Exception as exc:  # noqa: BLE001 - user code
                run.fail(_source_error(exc, position))
                return
            if value is _END:
                return
            if not await send(tx, ((position,), value)):
                return
            position += 1
            budget -= 1
            if not budget:
                budget = CHECKPOINT_EVERY
                await checkpoint()
    finally:
        if isinstance(iterator, AsyncGenerator):
            with anyio.move_on_after(ACLOSE_TIMEOUT, shield=True):
                await iterator.aclose()
