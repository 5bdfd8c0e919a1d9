"""A task function registered with :meth:`App.task <relayna.app.App.task>`, and
the adapter from ``fn(ctx, payload)`` to the consumer's ``handler(task, ctx)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from relayna.app._handle import TaskHandle
from relayna.consumer import RetryPolicy, TaskContext
from relayna.contracts import TaskEnvelope

if TYPE_CHECKING:
    from relayna.app._app import App

__all__ = ["Task", "TaskFunction"]

TaskFunction = Callable[[TaskContext, dict[str, Any]], Any]


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


def _adapt(fn: TaskFunction) -> Callable[[TaskEnvelope, TaskContext], Any]:
    """``fn(ctx, payload)`` as a consumer handler ``handler(task, ctx)`` (sync stays sync,
    so the consumer runs it in a worker thread)."""
    handler: Callable[[TaskEnvelope, TaskContext], Any]
    if _is_async(fn):

        async def run_async(task: TaskEnvelope, ctx: TaskContext) -> Any:
            return await fn(ctx, task.payload)

        handler = run_async
    else:

        def run_sync(task: TaskEnvelope, ctx: TaskContext) -> Any:
            return fn(ctx, task.payload)

        handler = run_sync
    handler.__name__ = getattr(fn, "__name__", "handler")
    handler.__qualname__ = getattr(fn, "__qualname__", handler.__name__)
    return handler


@attrs.frozen(eq=False)
class Task:
    """A task function registered with :meth:`App.task`.

    Calling it calls the function (``await render(ctx, payload)`` in a unit
    test); :meth:`publish` sends it to the workers.
    """

    app: App = attrs.field(repr=False)
    task_type: str
    fn: TaskFunction = attrs.field(repr=False)
    retry: RetryPolicy | None = None

    def __call__(self, ctx: TaskContext, payload: dict[str, Any]) -> Any:
        return self.fn(ctx, payload)

    @property
    def handler(self) -> Callable[[TaskEnvelope, TaskContext], Any]:
        return _adapt(self.fn)

    async def publish(self, payload: Mapping[str, Any] | None = None, **options: Any) -> TaskHandle:
        """``app.publish(self.task_type, payload, **options)``."""
        return await self.app.publish(self.task_type, payload, **options)
