"""Calling user code: middleware around the handler, sync handlers in a worker
thread, and what happened turned into an outcome (a handler failure, or a
result that is not JSON-safe, becomes :class:`Failed`; never an exception).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from functools import partial
from typing import Any

import anyio

from relayna.contracts import dumps
from relayna.errors import ContractError

from ._context import ManualRetryRequest, ManualRetryRequested, TaskContext
from ._decide import Failed, Succeeded
from ._settle import ConsumerStats

__all__ = ["AsyncCache", "Middleware", "call_handler", "log_failure"]

logger = logging.getLogger("relayna.consumer")

#: Middleware: ``mw(message, ctx)`` returns an async context manager entered
#: around the handler (outermost first). Exceptions from the handler pass
#: through it; it must let :class:`ManualRetryRequested` propagate.
Middleware = Callable[[Any, TaskContext], AbstractAsyncContextManager[Any]]


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


class AsyncCache:
    """Whether each handler is async, remembered: inspect costs µs per message."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[Any, bool]] = {}  # handler id -> (handler, is async)

    def is_async(self, handler: Callable[..., Any]) -> bool:
        hit = self._cache.get(id(handler))
        if hit is None or hit[0] is not handler:
            hit = self._cache[id(handler)] = (handler, _is_async(handler))
        return hit[1]


async def call_handler(
    handler: Callable[..., Any],
    message: Any,
    ctx: TaskContext,
    *,
    middleware: Sequence[Middleware],
    limiter: anyio.CapacityLimiter | None,
    cache: AsyncCache,
    stats: ConsumerStats,
) -> Succeeded | Failed | ManualRetryRequest:
    """Run ``middleware`` + ``handler``; turn what happened into an outcome.

    A sync handler runs in a worker thread bounded by ``limiter``. Failures
    are counted in ``stats.handler_failures``; the exception travels in the
    :class:`Failed` outcome and is logged where it becomes a decision
    (:func:`log_failure`), not here.
    """
    try:
        async with AsyncExitStack() as stack:
            for mw in middleware:
                await stack.enter_async_context(mw(message, ctx))
            if cache.is_async(handler):
                result = await handler(message, ctx)
            else:
                result = await anyio.to_thread.run_sync(
                    partial(handler, message, ctx), limiter=limiter
                )
    except ManualRetryRequested as signal:
        return signal.request
    except Exception as exc:  # noqa: BLE001 - user handler: a failure becomes a decision
        stats.handler_failures += 1
        return Failed(
            exception_type=type(exc).__name__, exception_message=str(exc)[:1024], exception=exc
        )
    if result is not None and not isinstance(result, dict):
        result = {"value": result}  # a status result is a JSON object on the wire
    if result is not None and not _json_safe(result):
        stats.handler_failures += 1
        message_text = f"handler result of type {type(result).__name__} is not JSON-serialisable"
        return Failed(
            exception_type="TypeError", exception_message=message_text, reason="invalid_result"
        )
    return Succeeded(result=result)


def log_failure(
    outcome: Failed,
    decision: object,
    *,
    consumer_name: str,
    queue: str,
    task_id: str,
    attempt: int,
) -> None:
    """Log a handler failure once, where it became ``decision``, with its traceback.

    Structured fields (``extra``): ``consumer``, ``queue``, ``task_id``,
    ``attempt``, ``decision`` (``Retry``, ``DeadLetter``, ...), ``reason``.
    """
    decided = type(decision).__name__
    logger.warning(
        "%s: handler failed for task %s (attempt %d, queue %s): %s: %s -> %s",
        consumer_name,
        task_id,
        attempt,
        queue,
        outcome.exception_type,
        outcome.exception_message,
        decided,
        exc_info=outcome.exception,
        extra={
            "consumer": consumer_name,
            "queue": queue,
            "task_id": task_id,
            "attempt": attempt,
            "decision": decided,
            "reason": outcome.reason,
        },
    )


def _json_safe(value: Any) -> bool:
    """Whether ``value`` can be the ``result`` of a status event on the wire."""
    try:
        dumps(value)
    except (ContractError, TypeError, ValueError):
        return False
    return True
