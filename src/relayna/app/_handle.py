"""What ``app.publish`` returns: a handle on one published task's status."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream

from relayna.contracts import TaskEnvelope, TerminalStatusSet
from relayna.errors import ConfigurationError, RelaynaError
from relayna.rabbitmq import CancelResult, RelaynaClient
from relayna.status import Emit, EventDict, StatusStore, StatusStreamItem, open_status_stream

__all__ = ["StatusEvents", "TaskFailed", "TaskHandle"]


class StatusEvents:
    """The status events of one task, oldest first: ``async for event in events``.

    Stored history first, then live events; iteration ends after a terminal
    status (or when the app shuts down).
    """

    def __init__(self, items: MemoryObjectReceiveStream[StatusStreamItem]) -> None:
        self._items = items

    def __aiter__(self) -> StatusEvents:
        return self

    async def __anext__(self) -> EventDict:
        async for item in self._items:
            if isinstance(item, Emit):
                return item.event
        raise StopAsyncIteration


@attrs.frozen
class TaskHandle:
    """A published task: its envelope, and its status read from the store.

    The handle is valid while the app that published it is open.
    """

    task: TaskEnvelope
    _status: StatusStore = attrs.field(alias="status_store", repr=False)
    _shutdown: anyio.Event | None = attrs.field(alias="shutdown", default=None, repr=False)
    _terminal: TerminalStatusSet = attrs.field(alias="terminal", factory=TerminalStatusSet)
    _client: RelaynaClient | None = attrs.field(alias="client", default=None, repr=False)

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def task_type(self) -> str | None:
        return self.task.task_type

    async def cancel(self, reason: str | None = None) -> CancelResult:
        """Cancel this task (see :meth:`relayna.App.cancel`).

        Raises:
            ConfigurationError: the handle has no client (not from an open app).
            ContractError: a reason over 500 characters.
        """
        if self._client is None:
            raise ConfigurationError("this handle cannot cancel: get it from an open App")
        return await self._client.cancel(self.task_id, reason)

    async def status(self) -> EventDict | None:
        """The latest stored status event, or ``None`` while there is none."""
        return await self._status.latest(self.task_id)

    async def history(self) -> list[EventDict]:
        """Every stored status event, oldest first."""
        return (await self._status.history(self.task_id))[::-1]

    @asynccontextmanager
    async def events(
        self, *, terminal_statuses: Iterable[str] | None = None
    ) -> AsyncIterator[StatusEvents]:
        """``async with handle.events() as events: async for event in events: ...``

        History first, then live events, until a terminal status (default
        ``completed``, ``failed``, ``cancelled``, ``expired``). Leaving the block stops following.
        """
        terminal = (
            TerminalStatusSet(frozenset(terminal_statuses))
            if terminal_statuses is not None
            else self._terminal
        )
        async with open_status_stream(
            self._status, self.task_id, terminal_statuses=terminal, shutdown=self._shutdown
        ) as items:
            yield StatusEvents(items)

    async def wait(self) -> EventDict:
        """Wait for the task's terminal status event and return it.

        Bound the wait at the call site: ``with anyio.fail_after(30): await
        handle.wait()``.

        Raises:
            RelaynaError: the app shut down before the task ended.
        """
        async with self.events() as events:
            async for event in events:
                if self._terminal.is_terminal(event.get("status")):
                    return event
        raise RelaynaError(f"stopped following task {self.task_id!r} before it ended")

    async def result(self) -> Any:
        """The ``result`` of the ``completed`` event (waits for it, as :meth:`wait`).

        Raises:
            TaskFailed: the task ended with another terminal status.
        """
        event = await self.wait()
        if str(event.get("status", "")).lower() != "completed":
            raise TaskFailed(self.task_id, event)
        return event.get("result")


class TaskFailed(RelaynaError):
    """The task ended with a terminal status other than ``completed``."""

    def __init__(self, task_id: str, event: EventDict) -> None:
        self.task_id = task_id
        self.event = event
        message = event.get("message") or ""
        super().__init__(f"task {task_id!r} ended {event.get('status')!r}: {message}".rstrip(": "))
